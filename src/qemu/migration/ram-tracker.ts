/**
 * RAM state of one migration channel across its START/PART/END sections: the block list,
 * the block of the last record (for CONTINUE, which persists across sections), and one byte
 * per guest page recording the page's final state (last record wins).
 *
 * Memory: one byte per 4 KiB page (256 KiB per GiB of guest RAM), never page contents.
 */
import { DecodeError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import type { BlockSummary, RamBlock, RamSectionInfo } from "./records.ts";

const TWO_POW_32 = 0x1_0000_0000;

/** A page's state after the records seen so far. */
const PageState = { unsent: 0, data: 1, zero: 2 } as const;

/** One block's counters; the hot path mutates them in place. */
export class BlockState {
  readonly index: number;
  readonly block: RamBlock;
  readonly states: Uint8Array;
  pageRecords = 0;
  zeroRecords = 0;

  constructor(index: number, block: RamBlock) {
    this.index = index;
    this.block = block;
    this.states = new Uint8Array(block.lengthBytes / PAGE_SIZE_BYTES);
  }

  /**
   * The page index of a record whose be64 word was hi:lo with `flags` in the low bits.
   * Throws when the offset lies beyond the block (`at` = the record's offset).
   */
  pageIndex(hi: number, lo: number, flags: number, at: number): number {
    const offsetBytes = hi * TWO_POW_32 + (lo - flags);
    if (offsetBytes >= this.block.lengthBytes) {
      throw new DecodeError(
        `RAM record for offset 0x${offsetBytes.toString(16)} is beyond block ` +
          `"${this.block.name}" (0x${this.block.lengthBytes.toString(16)} bytes)`,
        at,
      );
    }
    return offsetBytes / PAGE_SIZE_BYTES;
  }

  notePage(pageIndex: number): void {
    this.pageRecords++;
    this.states[pageIndex] = PageState.data;
  }

  noteZero(pageIndex: number, fill: number): void {
    this.zeroRecords++;
    this.states[pageIndex] = fill === 0 ? PageState.zero : PageState.data;
  }

  summary(): BlockSummary {
    let finalDataPages = 0;
    let finalZeroPages = 0;
    for (const state of this.states) {
      if (state === PageState.data) finalDataPages++;
      else if (state === PageState.zero) finalZeroPages++;
    }
    return {
      name: this.block.name,
      lengthBytes: this.block.lengthBytes,
      pageRecords: this.pageRecords,
      zeroRecords: this.zeroRecords,
      finalDataPages,
      finalZeroPages,
    };
  }
}

export class RamTracker {
  readonly info: RamSectionInfo;
  readonly blocks: readonly RamBlock[];
  readonly #states: readonly BlockState[];
  readonly #byName: ReadonlyMap<string, BlockState>;
  /** The block of the last record on this channel: what CONTINUE refers to. */
  #current: BlockState | null = null;

  constructor(info: RamSectionInfo, blocks: readonly RamBlock[]) {
    this.info = info;
    this.blocks = blocks;
    this.#states = blocks.map((block, i) => new BlockState(i, block));
    this.#byName = new Map(this.#states.map((s) => [s.block.name, s]));
  }

  /** The block a CONTINUE record refers to. */
  continued(at: number): BlockState {
    if (this.#current === null) {
      throw new DecodeError("RAM record has CONTINUE but no block was named before it", at);
    }
    return this.#current;
  }

  /** The block a record names; it becomes the CONTINUE block. */
  select(name: string, at: number): BlockState {
    const state = this.#byName.get(name);
    if (state === undefined) {
      throw new DecodeError(`RAM record names unknown block "${name}"`, at);
    }
    this.#current = state;
    return state;
  }

  get records(): number {
    let total = 0;
    for (const s of this.#states) total += s.pageRecords + s.zeroRecords;
    return total;
  }

  summary(): BlockSummary[] {
    return this.#states.map((s) => s.summary());
  }
}
