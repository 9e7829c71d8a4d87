/**
 * The page map (docs/format.md §3.2): one u32 entry per guest page, blocks back to back in
 * manifest order. PageMap answers "what is page p of block b" in O(1) and maps a global entry
 * index back to (block, page).
 *
 * Invariant (after checkPageMap): every entry is zero with a clean payload, or stored (kind 1,
 * a pack chunk) or a disk duplicate (kind 2, a disk chunk) with a chunk index inside the chunk
 * table and a slot inside that chunk.
 *
 * PageLocation deliberately has no third kind: a disk duplicate is located like a stored page,
 * and readChunk(chunk)[slot] gives its verified bytes whichever kind of chunk holds it, so
 * every restore path serves disk duplicates without knowing about them. ChunkTable.isDisk and
 * CheckpointReader.diskRef tell them apart where that matters (statistics, inspect).
 */
import assert from "node:assert/strict";
import type { ChunkTable } from "./chunk-table.ts";
import { FILL_MASK, KIND_SHIFT, PageKind, SLOT_BITS, SLOT_MASK } from "./format.ts";

export type PageLocation =
  | { readonly kind: "zero"; readonly fill: number }
  /** Read with readChunk(chunk)[slot]: a pack chunk, or a disk chunk (frozen layer blocks). */
  | { readonly kind: "stored"; readonly chunk: number; readonly slot: number };

export interface BlockShape {
  readonly name: string;
  readonly pageCount: number;
}

export class PageMap {
  readonly entries: Uint32Array;
  readonly blocks: readonly BlockShape[];
  /** blockStarts[b] = global index of page 0 of block b; blockStarts[blocks.length] = total. */
  readonly blockStarts: Uint32Array;

  constructor(blocks: readonly BlockShape[], entries: Uint32Array) {
    this.blocks = blocks;
    this.blockStarts = new Uint32Array(blocks.length + 1);
    let total = 0;
    blocks.forEach((b, i) => {
      this.blockStarts[i] = total;
      total += b.pageCount;
    });
    this.blockStarts[blocks.length] = total;
    assert(entries.length === total, "page map has one entry per page");
    this.entries = entries;
  }

  /** Global entry index of (block, page); asserts both are in range (a caller's bug otherwise). */
  indexOf(blockIndex: number, pageIndex: number): number {
    const block = this.blocks[blockIndex];
    if (
      block === undefined ||
      !Number.isInteger(pageIndex) ||
      pageIndex < 0 ||
      pageIndex >= block.pageCount
    ) {
      assert.fail(
        `page ${pageIndex} of block ${blockIndex} is outside the checkpoint's RAM blocks`,
      );
    }
    return (this.blockStarts[blockIndex] ?? 0) + pageIndex;
  }

  /** The block holding global entry `index` (binary search over block starts). */
  blockOf(index: number): number {
    let lo = 0;
    let hi = this.blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.blockStarts[mid] ?? 0) <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Every entry in global order, without an object per page (what locate() gives, in bulk):
   * `stored(index, chunk)` for a stored page or disk duplicate, `filledZero(index)` for a
   * zero page whose fill byte is not 0; zero pages with fill 0 are skipped.
   */
  scan(stored: (index: number, chunk: number) => void, filledZero: (index: number) => void): void {
    const { entries } = this;
    const chunkMask = (1 << KIND_SHIFT) - 1;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] ?? 0;
      if (e >>> KIND_SHIFT === PageKind.zero) {
        if ((e & FILL_MASK) !== 0) filledZero(i);
      } else stored(i, (e & chunkMask) >>> SLOT_BITS);
    }
  }

  locate(blockIndex: number, pageIndex: number): PageLocation {
    return decodeEntry(this.entries[this.indexOf(blockIndex, pageIndex)] ?? 0);
  }

  /** "block "pc.ram" page 7" for the entry at global `index`. */
  describe(index: number): string {
    const b = this.blockOf(index);
    return `block "${this.blocks[b]?.name}" page ${index - (this.blockStarts[b] ?? 0)}`;
  }
}

export function decodeEntry(entry: number): PageLocation {
  const kind = entry >>> KIND_SHIFT;
  if (kind === PageKind.zero) return { kind: "zero", fill: entry & FILL_MASK };
  assert(
    kind === PageKind.stored || kind === PageKind.diskDuplicate,
    "page map was checked when it was opened",
  );
  return {
    kind: "stored",
    chunk: (entry & ((1 << KIND_SHIFT) - 1)) >>> SLOT_BITS,
    slot: entry & SLOT_MASK,
  };
}

/**
 * Why the page map is invalid for this chunk table, or null if every entry is valid. One tight
 * loop over per-chunk arrays (a restore opens a million entries at 4 GiB); an entry it doubts
 * is described by entryProblem.
 */
export function checkPageMap(map: PageMap, chunks: ChunkTable): string | null {
  const count = chunks.count;
  const pagesOf = new Uint16Array(count);
  const kindOf = new Uint8Array(count); // the page kind a chunk's pages must have
  for (let c = 0; c < count; c++) {
    pagesOf[c] = chunks.pageCount(c);
    kindOf[c] = chunks.isDisk(c) ? PageKind.diskDuplicate : PageKind.stored;
  }
  const entries = map.entries;
  const chunkMask = (1 << KIND_SHIFT) - 1;
  const zeroReserved = ~FILL_MASK & chunkMask;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as number;
    const kind = e >>> KIND_SHIFT;
    const ok =
      kind === PageKind.zero
        ? (e & zeroReserved) === 0
        : (e & chunkMask) >>> SLOT_BITS < count &&
          kindOf[(e & chunkMask) >>> SLOT_BITS] === kind &&
          (e & SLOT_MASK) < (pagesOf[(e & chunkMask) >>> SLOT_BITS] as number);
    if (!ok) return entryProblem(map, chunks, i) ?? `page map entry ${i} is invalid`;
  }
  return null;
}

/** Why entry `i` is invalid, or null. */
function entryProblem(map: PageMap, chunks: ChunkTable, i: number): string | null {
  const e = map.entries[i] ?? 0;
  const kind = e >>> KIND_SHIFT;
  if (kind === PageKind.zero) {
    if ((e & ~FILL_MASK & ((1 << KIND_SHIFT) - 1)) !== 0) {
      return `page map entry for ${map.describe(i)} is a zero page with non-zero reserved bits`;
    }
  } else if (kind === PageKind.stored || kind === PageKind.diskDuplicate) {
    const chunk = (e & ((1 << KIND_SHIFT) - 1)) >>> SLOT_BITS;
    const slot = e & SLOT_MASK;
    if (chunk >= chunks.count) {
      return `page map entry for ${map.describe(i)} points to chunk ${chunk} of ${chunks.count}`;
    }
    if (chunks.isDisk(chunk) !== (kind === PageKind.diskDuplicate)) {
      const what = kind === PageKind.stored ? "stored page" : "disk duplicate";
      return `page map entry for ${map.describe(i)} is a ${what} in the wrong kind of chunk ${chunk}`;
    }
    if (slot >= chunks.pageCount(chunk)) {
      const pages = chunks.pageCount(chunk);
      return `page map entry for ${map.describe(i)} points to slot ${slot} of chunk ${chunk} (${pages} pages)`;
    }
  } else {
    return `page map entry for ${map.describe(i)} has unknown kind ${kind}`;
  }
  return null;
}
