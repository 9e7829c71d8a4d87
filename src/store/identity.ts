/**
 * A checkpoint's identity: the SHA-256 of its manifest file. The manifest names the pack, the
 * index hash and the creation time, so two checkpoints saved under one name (one removed, the
 * other saved later) never share an identity. Data kept beside a checkpoint (working sets) is
 * keyed by it, so it can never be taken for another checkpoint's.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { FileName } from "../checkpoint/format.ts";
import { checkCheckpointName } from "../checkpoint/names.ts";
import { checkpointDir } from "./layout.ts";

/** The identity of listed checkpoint `name`, or null when it is not listed. */
export async function checkpointIdentity(home: string, name: string): Promise<string | null> {
  checkCheckpointName(name);
  let bytes: Buffer;
  try {
    bytes = await readFile(join(checkpointDir(home, name), FileName.manifest));
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") return null;
    throw error;
  }
  return createHash("sha256").update(bytes).digest("hex");
}
