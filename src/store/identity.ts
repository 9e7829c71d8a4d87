/**
 * A checkpoint's identity: the SHA-256 of its manifest file. The manifest names the pack, the
 * index hash and the creation time, so two checkpoints saved under one name (one removed, the
 * other saved later) never share an identity. Data kept beside a checkpoint (working sets) is
 * keyed by it, so it can never be taken for another checkpoint's.
 */
import { createHash } from "node:crypto";
import { readFile, rename, rm } from "node:fs/promises";
import { errorCode } from "../util/index.ts";
import { manifestFile, workingSetDir } from "./layout.ts";

/** The identity of listed checkpoint `name`, or null when it is not listed. */
export async function checkpointIdentity(home: string, name: string): Promise<string | null> {
  let bytes: Buffer;
  try {
    bytes = await readFile(manifestFile(home, name));
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Moves the working sets of checkpoint `name` from identity `from` to its identity now: for a
 * relayout, which rewrites the manifest but keeps every page where a working set points.
 */
export async function rebindWorkingSets(home: string, name: string, from: string): Promise<void> {
  const to = await checkpointIdentity(home, name);
  if (to === null || to === from) return;
  await rm(workingSetDir(home, name, to), { recursive: true, force: true });
  await rename(workingSetDir(home, name, from), workingSetDir(home, name, to)).catch(
    (error: unknown) => {
      if (errorCode(error) !== "ENOENT") throw error;
    },
  );
}
