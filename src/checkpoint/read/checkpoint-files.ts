/**
 * Reading a checkpoint directory's files before trusting them: the manifest (size-bounded,
 * then verified by decodeManifest) and the presence and size of every file it names.
 * Shared by the store's listing and the reader.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { InvalidCheckpointError, NotFoundError } from "../../errors.ts";
import { MANIFEST_BYTES_MAX } from "../../limits.ts";
import { checkpointDir, checkpointsDir } from "../../store/layout.ts";
import { errorCode } from "../../util/index.ts";
import { FileName } from "../format/format.ts";
import { decodeManifest, type Manifest } from "../format/manifest.ts";
import type { CheckpointStore } from "../store/store.ts";

/** One line of the catalogue. */
export interface CheckpointListing {
  readonly name: string;
  readonly dir: string;
  readonly createdAt: string;
  /** Format version, e.g. "1.0". */
  readonly format: string;
  /** Guest RAM the checkpoint describes. */
  readonly ramBytes: number;
  /** The checkpoint's own files, manifest included (not the packs it shares, format 1.2). */
  readonly bytes: number;
  /** The checkpoint it was saved incrementally from, or null (informative: it may be gone). */
  readonly parent: string | null;
  /** ramBytes / bytes. */
  readonly compressionRatio: number;
}

/** Size of `path`, or null if it does not exist. */
export async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
}

/** Where a store keeps its checkpoints (a CheckpointStore, or the layout of a home). */
type CheckpointDirs = Pick<CheckpointStore, "dirOf" | "checkpointsDir">;

/** The directory of checkpoint `name` in `store`; NotFoundError when there is none. */
export async function existingDir(store: CheckpointDirs, name: string): Promise<string> {
  const dir = store.dirOf(name);
  if ((await sizeOf(dir)) === null)
    throw new NotFoundError(`No checkpoint named "${name}" in ${store.checkpointsDir}`);
  return dir;
}

/**
 * The manifest of checkpoint `name` in the store at `home` alone (its files are checked when
 * it is opened). It needs no CheckpointStore: the restore command reads it on its way to
 * starting QEMU, and the store's module brings the reader and writer with it (~12 ms of
 * loading; docs/bench.md, "The floors under a restore").
 */
export async function manifestOf(home: string, name: string): Promise<Manifest> {
  const dirs = {
    dirOf: (n: string) => checkpointDir(home, n),
    checkpointsDir: checkpointsDir(home),
  };
  return readManifestFile(await existingDir(dirs, name), name);
}

/** Reads and verifies `<dir>/manifest`; `checkpoint` is the name the directory claims. */
export async function readManifestFile(dir: string, checkpoint: string): Promise<Manifest> {
  const path = join(dir, FileName.manifest);
  const size = await sizeOf(path);
  if (size === null)
    throw new InvalidCheckpointError(checkpoint, `manifest file "${FileName.manifest}" is missing`);
  if (size > MANIFEST_BYTES_MAX) {
    throw new InvalidCheckpointError(
      checkpoint,
      `manifest is ${size} bytes, more than the ${MANIFEST_BYTES_MAX}-byte limit`,
    );
  }
  const manifest = decodeManifest(await readFile(path), checkpoint);
  if (manifest.name !== checkpoint) {
    throw new InvalidCheckpointError(checkpoint, `its manifest names it "${manifest.name}"`);
  }
  return manifest;
}

/**
 * Checks every file the manifest names is there with its size (shared packs too); returns the
 * bytes of the checkpoint's own files: a shared pack is counted by the checkpoint that wrote it.
 */
export async function checkFiles(
  dir: string,
  manifest: Manifest,
  checkpoint: string,
): Promise<number> {
  const files: [string, string, number][] = [
    ["index", manifest.index.file, manifest.index.bytes],
    ["pack", manifest.chunks.file, manifest.chunks.bytes],
    ["device state", manifest.deviceState.file, manifest.deviceState.bytes],
  ];
  let total = (await sizeOf(join(dir, FileName.manifest))) ?? 0;
  const own = files.length;
  for (const p of manifest.packs) files.push(["shared pack", p.file, p.bytes]);
  for (const [i, [what, file, expected]] of files.entries()) {
    const size = await sizeOf(join(dir, file));
    const fail = (why: string) =>
      new InvalidCheckpointError(checkpoint, `${what} file "${file}" ${why}`);
    if (size === null) throw fail("is missing");
    if (size < expected) throw fail(`is truncated: ${size} of ${expected} bytes`);
    if (size > expected) throw fail(`has ${size} bytes, expected ${expected}`);
    if (i < own) total += size;
  }
  return total;
}

export function listingOf(manifest: Manifest, dir: string, bytes: number): CheckpointListing {
  const ramBytes = manifest.ramBlocks.reduce((n, b) => n + b.lengthBytes, 0);
  return {
    name: manifest.name,
    dir,
    createdAt: manifest.createdAt,
    format: manifest.format,
    ramBytes,
    bytes,
    parent: manifest.parent?.name ?? null,
    compressionRatio: bytes === 0 ? 0 : Math.round((ramBytes / bytes) * 100) / 100,
  };
}
