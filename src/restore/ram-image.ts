/**
 * A mapped restore's RAM image (ADR 0032): the checkpoint's main RAM block as one raw file,
 * which the restored QEMU maps copy-on-write (memory-backend-file, share=off). It is built from
 * verified pages on the checkpoint's first mapped restore, kept in `<home>/cache/ram/<name>/`
 * (store/layout.ts), and checked against its region sums before every restore that maps it.
 *
 * Invariants: a file under its final name is never written again (a build writes under tmp/
 * and renames over), so a QEMU that maps an image never sees it change; `sums` is renamed into
 * place after `image` and names the checkpoint's identity, the block, its length and one BLAKE3
 * per RAM_IMAGE_REGION_BYTES. Images are handed out as open files: what a restore checks (or
 * built) is the inode it gives QEMU, whatever another restore renames in meanwhile.
 */
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { throwIfAborted } from "../abort.ts";
import type { Manifest } from "../checkpoint/format/manifest.ts";
import type { CheckpointReader, ChunkWorkers } from "../checkpoint/index.ts";
import type { CheckpointStore } from "../checkpoint/store/store.ts";
import { NotFoundError } from "../errors.ts";
import {
  RAM_IMAGE_REGION_BYTES,
  RAM_IMAGE_REGIONS_IN_FLIGHT,
  RAM_IMAGE_SUMS_BYTES_MAX,
  RAM_IMAGES_BYTES_MAX,
} from "../limits.ts";
import type { ProgressListener } from "../progress.ts";
import { checkpointIdentity } from "../store/identity.ts";
import { ramImageDir, ramImagesRoot } from "../store/layout.ts";
import { errorCode } from "../util/index.ts";
import { PC_RAM_BLOCK } from "../wss/guest-physical.ts";
import { writeBlockPages } from "./block-pages.ts";

const SUMS_FORMAT = "snapwake-ram-image 1";

/** What a RAM image is of: the checkpoint (by identity) and the block it maps. */
export interface ImageKey {
  readonly checkpoint: string;
  /** The SHA-256 of the checkpoint's manifest file (store/identity.ts). */
  readonly identity: string;
  readonly block: string;
  readonly lengthBytes: number;
}

/** The sums file: the key, the region size and one BLAKE3 (hex) per region. */
export interface ImageSums extends ImageKey {
  readonly format: typeof SUMS_FORMAT;
  readonly regionBytes: number;
  readonly blake3: readonly string[];
}

/**
 * The key of checkpoint `checkpoint`'s image (`manifest` is its): its identity and its block
 * PC_RAM_BLOCK, whose index is -1 when it has none (a machine other than x86 pc and q35).
 */
export async function imageKeyOf(
  home: string,
  checkpoint: string,
  manifest: Pick<Manifest, "ramBlocks">,
): Promise<{ key: ImageKey; blockIndex: number }> {
  const identity = await checkpointIdentity(home, checkpoint);
  if (identity === null) throw new NotFoundError(`No checkpoint named "${checkpoint}"`);
  const blockIndex = manifest.ramBlocks.findIndex((b) => b.name === PC_RAM_BLOCK);
  const lengthBytes = manifest.ramBlocks[blockIndex]?.lengthBytes ?? 0;
  return { key: { checkpoint, identity, block: PC_RAM_BLOCK, lengthBytes }, blockIndex };
}

/** What `inspect` says of a checkpoint's kept image: its disk use and last check, or null. */
export async function keptImage(
  home: string,
  checkpoint: string,
  manifest: Pick<Manifest, "ramBlocks">,
): Promise<{ readonly diskBytes: number; readonly usedAt: string } | null> {
  const { key, blockIndex } = await imageKeyOf(home, checkpoint, manifest);
  if (blockIndex < 0 || (await readImageSums(home, key)) === null) return null;
  const paths = ramImagePaths(home, checkpoint);
  const image = await stat(paths.image).catch(() => null);
  const sums = await stat(paths.sums).catch(() => null);
  if (image === null || sums === null) return null;
  return { diskBytes: image.blocks * 512, usedAt: sums.mtime.toISOString() };
}

export function ramImagePaths(home: string, checkpoint: string) {
  const dir = ramImageDir(home, checkpoint);
  return { dir, image: join(dir, "image"), sums: join(dir, "sums") };
}

/** The kept image's sums when they are for exactly `key`; null when there are none that fit. */
export async function readImageSums(home: string, key: ImageKey): Promise<ImageSums | null> {
  let text: string;
  try {
    const path = ramImagePaths(home, key.checkpoint).sums;
    if ((await stat(path)).size > RAM_IMAGE_SUMS_BYTES_MAX) return null;
    text = await readFile(path, "utf8");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
  let sums: Partial<ImageSums>;
  try {
    sums = JSON.parse(text) as Partial<ImageSums>;
  } catch {
    return null; // a torn or foreign file: the image is built again
  }
  const fits =
    sums.format === SUMS_FORMAT &&
    sums.checkpoint === key.checkpoint &&
    sums.identity === key.identity &&
    sums.block === key.block &&
    sums.lengthBytes === key.lengthBytes &&
    sums.regionBytes === RAM_IMAGE_REGION_BYTES &&
    Array.isArray(sums.blake3) &&
    sums.blake3.length === regionCount(key.lengthBytes) &&
    sums.blake3.every((s) => typeof s === "string" && /^[0-9a-f]{64}$/.test(s));
  return fits ? (sums as ImageSums) : null;
}

/** An image open for reading, and the sums it must match. */
export interface OpenImage {
  readonly file: FileHandle;
  readonly sums: ImageSums;
}

/** The kept image of exactly `key`, opened, with its sums; null when there is none that fits. */
export async function openKeptImage(home: string, key: ImageKey): Promise<OpenImage | null> {
  const sums = await readImageSums(home, key);
  if (sums === null) return null;
  try {
    return { file: await open(ramImagePaths(home, key.checkpoint).image, "r"), sums };
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
}

/**
 * Checks every region of an opened kept image against its sums on `workers`. Returns null when
 * all match, else what is wrong (the caller removes the image and builds it again).
 */
export async function checkImage(
  home: string,
  image: OpenImage,
  workers: ChunkWorkers,
  signal?: AbortSignal,
): Promise<string | null> {
  const { sums } = image;
  const path = ramImagePaths(home, sums.checkpoint).image;
  const digests = await regionDigests(image.file, path, sums.lengthBytes, workers, signal);
  if (digests === "short") return `${path} is shorter than its ${sums.lengthBytes} bytes`;
  const bad = digests.findIndex((d, i) => d !== sums.blake3[i]);
  if (bad >= 0) return `region ${bad} of ${path} does not match its sum`;
  const now = new Date();
  // Recently used, for makeRoom; best effort: a concurrent build may be replacing the file.
  await utimes(ramImagePaths(home, sums.checkpoint).sums, now, now).catch(() => undefined);
  return null;
}

/**
 * Builds the image of block `blockIndex` from `reader`'s verified pages (zero pages stay holes)
 * under tmp/, sums it, and renames both into place; returns it opened. Other images are removed,
 * least recently used first, while all of them with this one would exceed RAM_IMAGES_BYTES_MAX.
 */
export async function buildImage(
  home: string,
  key: ImageKey,
  source: {
    readonly reader: CheckpointReader;
    readonly blockIndex: number;
    readonly store: CheckpointStore;
    /** `{ phase: "building the RAM image" }` every 32 MiB of the block's pages visited. */
    readonly onProgress?: ProgressListener | undefined;
  },
  workers: ChunkWorkers,
  signal?: AbortSignal,
): Promise<OpenImage> {
  await makeRoom(home, key);
  // Both under tmp/ with names `gc` knows: a build cut short leaves nothing it keeps.
  const tmp = await source.store.newTempPath();
  const tmpSums = await source.store.newTempPath();
  let reading: FileHandle | null = null;
  try {
    const file = await open(tmp, "wx");
    try {
      await file.truncate(key.lengthBytes);
      const pages = { ...source, phase: "building the RAM image" };
      await writeBlockPages(file, pages, key.lengthBytes, workers, signal);
    } finally {
      await file.close();
    }
    reading = await open(tmp, "r");
    const digests = await regionDigests(reading, tmp, key.lengthBytes, workers, signal);
    if (digests === "short") throw new Error(`${tmp} was cut short while it was built`);
    const sums: ImageSums = {
      format: SUMS_FORMAT,
      ...key,
      regionBytes: RAM_IMAGE_REGION_BYTES,
      blake3: digests,
    };
    const paths = ramImagePaths(home, key.checkpoint);
    await mkdir(paths.dir, { recursive: true });
    await rename(tmp, paths.image); // over an older one: a QEMU that maps it keeps its inode
    await writeFile(tmpSums, `${JSON.stringify(sums)}\n`, { flag: "wx" });
    await rename(tmpSums, paths.sums);
    return { file: reading, sums };
  } catch (error) {
    await reading?.close();
    await rm(tmp, { force: true });
    await rm(tmpSums, { force: true });
    throw imageError(key, error);
  }
}

/** Removes checkpoint `name`'s image (with the checkpoint, or a failed check). */
export async function removeImage(home: string, name: string): Promise<void> {
  await rm(ramImageDir(home, name), { recursive: true, force: true });
}

function regionCount(lengthBytes: number): number {
  return Math.ceil(lengthBytes / RAM_IMAGE_REGION_BYTES);
}

/** One BLAKE3 (hex) per region of `file` (at `path`), or "short" when it ends early. */
async function regionDigests(
  file: FileHandle,
  path: string,
  lengthBytes: number,
  workers: ChunkWorkers,
  signal: AbortSignal | undefined,
): Promise<string[] | "short"> {
  const digests: string[] = [];
  const free = Array.from(
    { length: RAM_IMAGE_REGIONS_IN_FLIGHT },
    () => new ArrayBuffer(RAM_IMAGE_REGION_BYTES),
  );
  const running = new Set<Promise<void>>();
  let short = false;
  let failure: unknown = null; // the first job's failure: thrown once no job runs
  try {
    for (let region = 0; region < regionCount(lengthBytes) && failure === null; region++) {
      throwIfAborted(signal);
      while (free.length === 0 && failure === null) await Promise.race(running);
      const buffer = free.pop();
      if (buffer === undefined) break; // a job failed without giving its buffer back
      const offset = region * RAM_IMAGE_REGION_BYTES;
      const bytes = Math.min(RAM_IMAGE_REGION_BYTES, lengthBytes - offset);
      const job = workers
        .run({ kind: "regionDigest", buffer, fd: file.fd, offset, bytes })
        .then((reply) => {
          free.push(reply.buffer);
          if (!reply.ok && reply.ended === true) short = true;
          else if (!reply.ok) throw new Error(`Cannot check ${path}: ${reply.error ?? "failed"}`);
          else digests[region] = Buffer.from(reply.digests ?? []).toString("hex");
        })
        .catch((error: unknown) => {
          failure ??= error;
        });
      const tracked = job.finally(() => running.delete(tracked));
      running.add(tracked);
    }
  } finally {
    await Promise.all(running); // never rejects; no job may still read `file` once it closes
  }
  if (failure !== null) throw failure;
  return short ? "short" : digests;
}

/** Removes other images, least recently used first, until `key`'s fits within the bound. */
export async function makeRoom(
  home: string,
  key: ImageKey,
  boundBytes = RAM_IMAGES_BYTES_MAX,
): Promise<void> {
  const root = ramImagesRoot(home);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return;
    throw error;
  }
  const kept: { name: string; bytes: number; usedMs: number }[] = [];
  for (const name of names) {
    if (name === key.checkpoint) continue; // replaced by this build
    const paths = ramImagePaths(home, name);
    const image = await stat(paths.image).catch(() => null);
    const sums = await stat(paths.sums).catch(() => null);
    kept.push({ name, bytes: (image?.blocks ?? 0) * 512, usedMs: sums?.mtimeMs ?? 0 });
  }
  kept.sort((a, b) => a.usedMs - b.usedMs);
  let total = kept.reduce((sum, k) => sum + k.bytes, 0) + key.lengthBytes;
  for (const k of kept) {
    if (total <= boundBytes) break;
    await removeImage(home, k.name);
    total -= k.bytes;
  }
}

function imageError(key: ImageKey, error: unknown): Error {
  if (errorCode(error) !== "ENOSPC")
    return error instanceof Error ? error : new Error(String(error));
  const mib = Math.ceil(key.lengthBytes / 2 ** 20);
  return new Error(
    `Cannot build the RAM image of "${key.checkpoint}": the disk is full (it needs up to ` +
      `${mib} MiB under the snapwake home). Free space there, or restore with --mode eager`,
    { cause: error },
  );
}
