/** Damages stored checkpoints the way a bad disk would, for the failure-path tests. */
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import type { CheckpointStore } from "../../src/checkpoint/index.ts";

/** Flips bit 4 of the byte at `at` in `file`; flipping twice restores it. */
export async function flipBit(file: string, at: number): Promise<void> {
  const handle = await open(file, "r+");
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, at);
    byte[0] = (byte[0] ?? 0) ^ 0x10;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}

/** Flips one bit in the middle of the checkpoint's chunk pack (inside some chunk's data). */
export async function corruptOneChunk(store: CheckpointStore, name: string): Promise<void> {
  const pack = join(store.dirOf(name), "chunks.pack");
  await flipBit(pack, Math.floor((await stat(pack)).size / 2));
}
