/** Damages stored checkpoints the way a bad disk would, for the failure-path tests. */
import { open } from "node:fs/promises";
import { join } from "node:path";
import type { CheckpointStore } from "../../src/checkpoint/index.ts";

/** Flips one bit in the middle of the checkpoint's chunk pack (inside some chunk's data). */
export async function corruptOneChunk(store: CheckpointStore, name: string): Promise<void> {
  const file = await open(join(store.dirOf(name), "chunks.pack"), "r+");
  try {
    const { size } = await file.stat();
    const at = Math.floor(size / 2);
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, at);
    byte[0] = (byte[0] ?? 0) ^ 0x10;
    await file.write(byte, 0, 1, at);
  } finally {
    await file.close();
  }
}
