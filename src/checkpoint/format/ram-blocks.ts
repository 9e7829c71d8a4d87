/** Validation of the RAM block list a writer receives (the same rules the manifest reader applies). */
import { UsageError } from "../../errors.ts";
import {
  CHECKPOINT_PAGES_MAX,
  PAGE_SIZE_BYTES,
  RAM_BLOCK_BYTES_MAX,
  RAM_BLOCK_NAME_BYTES_MAX,
  RAM_BLOCKS_MAX,
} from "../../limits.ts";
import type { RamBlockInfo } from "./manifest.ts";

export interface RamBlockInput {
  readonly name: string;
  readonly lengthBytes: number;
}

/** The blocks with their page counts, or UsageError naming what is wrong. */
export function checkRamBlocks(blocks: readonly RamBlockInput[]): RamBlockInfo[] {
  if (blocks.length > RAM_BLOCKS_MAX) {
    throw new UsageError(
      `Cannot store ${blocks.length} RAM blocks: the limit is ${RAM_BLOCKS_MAX}`,
    );
  }
  const names = new Set<string>();
  let pages = 0;
  const out = blocks.map(({ name, lengthBytes }) => {
    const bad = (why: string) =>
      new UsageError(`Cannot store RAM block ${JSON.stringify(name)}: ${why}`);
    if (
      typeof name !== "string" ||
      name.length === 0 ||
      Buffer.byteLength(name) > RAM_BLOCK_NAME_BYTES_MAX
    ) {
      throw bad(`its name must be 1 to ${RAM_BLOCK_NAME_BYTES_MAX} bytes`);
    }
    if (names.has(name)) throw bad("the name appears twice");
    names.add(name);
    if (
      !Number.isSafeInteger(lengthBytes) ||
      lengthBytes < 0 ||
      lengthBytes > RAM_BLOCK_BYTES_MAX
    ) {
      throw bad(`its length ${lengthBytes} is outside 0 to ${RAM_BLOCK_BYTES_MAX} bytes`);
    }
    if (lengthBytes % PAGE_SIZE_BYTES !== 0)
      throw bad(`its length ${lengthBytes} is not whole pages`);
    const pageCount = lengthBytes / PAGE_SIZE_BYTES;
    pages += pageCount;
    return { name, lengthBytes, pageCount };
  });
  if (pages > CHECKPOINT_PAGES_MAX) {
    throw new UsageError(
      `Cannot store ${pages} pages of RAM: the limit is ${CHECKPOINT_PAGES_MAX} (1 TiB)`,
    );
  }
  return out;
}
