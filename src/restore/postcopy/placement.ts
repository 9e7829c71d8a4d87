/**
 * Placement: which guest pages the restoring QEMU has been sent (placed, or still in flight on
 * the socket) and which it has asked for, one byte of flags a page over all RAM blocks back to
 * back (block b's page p is global index `starts[b] + p`).
 *
 * Invariant: a page is sent at most once. A second UFFDIO_COPY of a present page fails with
 * EEXIST and kills the destination (docs/migration-protocol.md §6.2), so markSent asserts
 * it: sending a page twice is our bug, never an operating error.
 */
import assert from "node:assert/strict";

const SENT = 1;
const REQUESTED = 2;

/** A run of consecutive pages of one block. */
export interface PageRun {
  readonly firstPage: number;
  readonly pages: number;
}

export class Placement {
  readonly #state: Uint8Array;
  /** starts[b] = global index of page 0 of block b; starts[blocks] = total pages. */
  readonly #starts: Uint32Array;
  #sent = 0;

  constructor(blockPages: readonly number[]) {
    this.#starts = new Uint32Array(blockPages.length + 1);
    let total = 0;
    blockPages.forEach((pages, b) => {
      assert(Number.isSafeInteger(pages) && pages >= 0, "a block has whole pages");
      this.#starts[b] = total;
      total += pages;
    });
    this.#starts[blockPages.length] = total;
    this.#state = new Uint8Array(total);
  }

  /** Pages over all blocks. */
  get totalPages(): number {
    return this.#state.length;
  }

  get blockCount(): number {
    return this.#starts.length - 1;
  }

  /** Pages marked sent so far (a running count; see countSent for a recount). */
  get sentPages(): number {
    return this.#sent;
  }

  pagesOf(block: number): number {
    return this.#start(block + 1) - this.#start(block);
  }

  /** Global index of (block, page); asserts both are in range. */
  index(block: number, page: number): number {
    assert(block >= 0 && block < this.blockCount, "block index in range");
    assert(Number.isInteger(page) && page >= 0 && page < this.pagesOf(block), "page in block");
    return this.#start(block) + page;
  }

  /** The (block, page) of global index `g`, by binary search over block starts. */
  locate(g: number): { readonly block: number; readonly page: number } {
    assert(Number.isInteger(g) && g >= 0 && g < this.totalPages, "global page index in range");
    let lo = 0;
    let hi = this.blockCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.#start(mid) <= g) lo = mid;
      else hi = mid - 1;
    }
    return { block: lo, page: g - this.#start(lo) };
  }

  isSent(g: number): boolean {
    return ((this.#state[g] ?? 0) & SENT) !== 0;
  }

  /** Up to `max` pages of `refs` not sent yet, from index `from` on, and the refs looked at. */
  nextUnsent(refs: Uint32Array, from: number, max: number): { pages: number[]; consumed: number } {
    const pages: number[] = [];
    let i = from;
    for (; i < refs.length && pages.length < max; i++) {
      const g = refs[i] ?? 0;
      if (!this.isSent(g)) pages.push(g);
    }
    return { pages, consumed: i - from };
  }

  /** Records that page `g` was handed to the socket; asserts it never was before. */
  markSent(g: number): void {
    const s = this.#state[g];
    assert(s !== undefined, "global page index in range");
    assert((s & SENT) === 0, `page ${g} is sent at most once (EEXIST would kill QEMU)`);
    this.#state[g] = s | SENT;
    this.#sent += 1;
  }

  /** Records a request for page `g`; true the first time the page is asked for. */
  markRequested(g: number): boolean {
    const s = this.#state[g];
    assert(s !== undefined, "global page index in range");
    this.#state[g] = s | REQUESTED;
    return (s & REQUESTED) === 0;
  }

  /** Sent pages counted from the flags themselves: the report's check on the running count. */
  countSent(): number {
    let n = 0;
    for (const s of this.#state) n += s & SENT;
    return n;
  }

  /** Runs of pages of `block` not sent yet, ascending and maximal (adjacent runs coalesced). */
  unsentRuns(block: number): PageRun[] {
    const start = this.#start(block);
    const pages = this.pagesOf(block);
    const runs: PageRun[] = [];
    let runStart = -1;
    for (let p = 0; p <= pages; p++) {
      const unsent = p < pages && !this.isSent(start + p);
      if (unsent && runStart < 0) runStart = p;
      if (!unsent && runStart >= 0) {
        runs.push({ firstPage: runStart, pages: p - runStart });
        runStart = -1;
      }
    }
    return runs;
  }

  #start(b: number): number {
    return this.#starts[b] ?? 0;
  }
}
