/**
 * The data disk: generated files plus MANIFEST in a directory, then an ext4 image of it made
 * by `mke2fs -d`. Reproducible: fixed UUID, hash seed, label and timestamps (file times set
 * with utimes, filesystem times via E2FSPROGS_FAKE_TIME, and inode change times, which
 * mke2fs 1.47.0 copies from the source and utimes cannot set, rewritten with debugfs).
 */
import { execFileSync } from "node:child_process";
import { mkdir, readdir, truncate, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  type DataDiskParams,
  formatManifest,
  generateDataFile,
  type ManifestEntry,
  manifestEntry,
  planDataFiles,
} from "./data-files.ts";

/** A fixed environment for build tools: no locale or user settings leak into the output. */
export const BUILD_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  LC_ALL: "C",
};
const FS_UUID = "5a0d5a0d-0000-4000-8000-000000000001";
const FS_LABEL = "snapwake-data";
const FIXED_TIME_S = 1_700_000_000;
const BLOCK_BYTES = 4096;
const MIB = 1024 * 1024;
/** Headroom for ext4 metadata (inode tables, bitmaps, group descriptors) and file tails. */
const OVERHEAD_BYTES = 16 * MIB;

export interface DataDirResult {
  entries: ManifestEntry[];
  totalBytes: number;
}

/** Writes the data files and MANIFEST into dir (which must be empty or new). */
export async function writeDataDir(dir: string, params: DataDiskParams): Promise<DataDirResult> {
  await mkdir(dir, { recursive: true });
  const entries: ManifestEntry[] = [];
  for (const plan of planDataFiles(params)) {
    const bytes = generateDataFile(plan);
    entries.push(manifestEntry(plan, bytes));
    await writeFile(path.join(dir, plan.name), bytes);
  }
  await writeFile(path.join(dir, "MANIFEST"), formatManifest(entries));
  for (const name of [...entries.map((e) => e.name), "MANIFEST"])
    await utimes(path.join(dir, name), FIXED_TIME_S, FIXED_TIME_S);
  await utimes(dir, FIXED_TIME_S, FIXED_TIME_S);
  return { entries, totalBytes: entries.reduce((sum, e) => sum + e.sizeBytes, 0) };
}

/** Image size for totalBytes of data: data + 2% + fixed headroom, whole MiB. */
export function dataImageBytes(totalBytes: number): number {
  return Math.ceil((totalBytes * 1.02 + OVERHEAD_BYTES) / MIB) * MIB;
}

/** Creates image (overwriting it) as ext4 without a journal, holding a copy of dir. */
export async function makeExt4Image(dir: string, image: string, sizeBytes: number): Promise<void> {
  await writeFile(image, "");
  await truncate(image, sizeBytes);
  const args = [
    "-q",
    "-F",
    "-t",
    "ext4",
    "-b",
    String(BLOCK_BYTES),
    "-m",
    "0",
    "-N",
    "256",
    "-O",
    "^has_journal",
    "-U",
    FS_UUID,
    "-L",
    FS_LABEL,
    "-E",
    `root_owner=0:0,hash_seed=${FS_UUID},lazy_itable_init=0,nodiscard`,
    "-d",
    dir,
    image,
    String(sizeBytes / BLOCK_BYTES),
  ];
  const env = { ...BUILD_ENV, E2FSPROGS_FAKE_TIME: String(FIXED_TIME_S) };
  execFileSync("mke2fs", args, { env, stdio: ["ignore", "inherit", "inherit"] });
  const paths = ["/", ...(await readdir(dir)).sort().map((name) => `/${name}`)];
  const commands = paths.flatMap((p) => [
    `set_inode_field ${p} ctime @${FIXED_TIME_S}`,
    `set_inode_field ${p} ctime_extra 0`,
  ]);
  const commandFile = path.join(path.dirname(image), "debugfs-ctime.txt");
  await writeFile(commandFile, `${commands.join("\n")}\n`);
  execFileSync("debugfs", ["-w", "-f", commandFile, image], { env, stdio: "pipe" });
}
