/**
 * A bench-only data disk for the page-cache-heavy guest of `bench space`: the test guest's own
 * data-disk builder (guest/builder/) at a bigger size, so the guest's page cache holds a few
 * hundred MiB of distinct file pages from its disk. The default test image stays 64 MiB (npm
 * test time); this one is built once and cached under build/bench-data/, keyed by a SHA-256 of
 * its parameters, the builder's sources and mke2fs's version, like scripts/build-guest.ts.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  BUILD_ENV,
  dataImageBytes,
  makeExt4Image,
  writeDataDir,
} from "../../guest/builder/data-disk.ts";
import type { DataDiskParams } from "../../guest/builder/data-files.ts";

const MIB = 1024 * 1024;
/** build/bench-data/ of this checkout: outside build/guest/, which its build owns. */
const CACHE_DIR = fileURLToPath(new URL("../../build/bench-data/", import.meta.url));
const BUILDER_DIR = fileURLToPath(new URL("../../guest/builder/", import.meta.url));
/** ~5 MiB per file on average: sizes vary 1–16× by the builder's weights. */
const FILE_BYTES_AVERAGE = 5 * MIB;
/** Not the default image's seed (0x5eed): nothing on this disk equals the default disk. */
const SEED = 0x5ace;

export interface SpaceDataDisk {
  /** The raw ext4 image; copy it (qcow2Copy) before a guest may write it. */
  readonly raw: string;
  readonly fileCount: number;
  /** Sum of the data files' sizes (MANIFEST excluded). */
  readonly dataBytes: number;
}

/** The cached image of filesMiB of data files; builds it (tens of seconds) if it is missing. */
export async function spaceDataDisk(
  filesMiB: number,
  log: (line: string) => void,
): Promise<SpaceDataDisk> {
  const params: DataDiskParams = {
    totalBytes: filesMiB * MIB,
    fileCount: Math.max(16, Math.round((filesMiB * MIB) / FILE_BYTES_AVERAGE)),
    seed: SEED,
  };
  const key = (await inputsHash(params)).slice(0, 16);
  const raw = path.join(CACHE_DIR, `space-${filesMiB}mib-${key}.img`);
  const infoFile = `${raw}.json`;
  const cached = await readFile(infoFile, "utf8").catch(() => null);
  // The info file holds the counts only: the checkout (so the path) may have moved since.
  if (cached !== null && (await exists(raw)))
    return { raw, ...(JSON.parse(cached) as Omit<SpaceDataDisk, "raw">) };

  log(`building a bench-only ${filesMiB} MiB data disk (${params.fileCount} files), once…`);
  await mkdir(CACHE_DIR, { recursive: true });
  // Older images (other sizes or builder versions) are hundreds of MiB each: keep one.
  for (const name of await readdir(CACHE_DIR))
    if (name.startsWith("space-")) await rm(path.join(CACHE_DIR, name), { force: true });
  const tmp = path.join(CACHE_DIR, `tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  try {
    const data = await writeDataDir(path.join(tmp, "data"), params);
    const image = path.join(tmp, "data.img");
    await makeExt4Image(path.join(tmp, "data"), image, dataImageBytes(data.totalBytes));
    const counts = { fileCount: data.entries.length, dataBytes: data.totalBytes };
    await rename(image, raw);
    await writeFile(infoFile, `${JSON.stringify(counts, null, 2)}\n`); // last: marks it complete
    return { raw, ...counts };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A fresh writable qcow2 copy of a raw image, so a save freezes it (qemu-img convert). */
export function qcow2Copy(raw: string, qcow2: string): void {
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, qcow2]);
}

async function inputsHash(params: DataDiskParams): Promise<string> {
  const h = createHash("sha256");
  h.update(JSON.stringify(params));
  for (const name of (await readdir(BUILDER_DIR)).sort()) {
    h.update(`\0${name}\0`);
    h.update(await readFile(path.join(BUILDER_DIR, name)));
  }
  h.update(execFileSync("mke2fs", ["-V"], { env: BUILD_ENV, encoding: "utf8", stdio: "pipe" }));
  return h.digest("hex");
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
