/**
 * FillOrder: which pages a lazy restore must deliver and in what order the background pushes
 * them. Stored pages go chunk by chunk in pack order (the checkpoint's locality order: one
 * chunk read serves all its pages), each chunk's pages ascending; zero pages with a non-zero
 * fill byte (rare: QEMU sends fill 0) go first, as ZERO records. Zero pages with fill 0 are
 * never pushed: a discarded page the destination never receives reads as zero (§6.4).
 *
 * `putFirst` moves some chunks to the front of the fill (the part of a partial restore's
 * working set its bounded prelude left out); the others keep pack order behind them.
 *
 * Memory: 4 bytes a stored page (the reverse index) plus 8 bytes a chunk.
 */
import type { PageLocation } from "../../checkpoint/index.ts";
import type { Placement } from "./placement.ts";

/** What FillOrder needs of a checkpoint reader. */
export interface PageKinds {
  readonly blocks: readonly { readonly pageCount: number }[];
  readonly chunks: { readonly count: number };
  pageKind(block: number, page: number): PageLocation;
  /**
   * pageKind of every page in bulk, by global index in block order (the Placement's): a
   * checkpoint reader has it, and FillOrder then makes no object per page (a 4 GiB guest has
   * a million, on the restore's critical path).
   */
  scanPages?(
    stored: (index: number, chunk: number) => void,
    filledZero: (index: number) => void,
  ): void;
}

type PageScan = (
  stored: (index: number, chunk: number) => void,
  filledZero: (index: number) => void,
) => void;

/** Every page in global order: the source's bulk scan, or pageKind page by page. */
function pageScan(source: PageKinds, placement: Placement): PageScan {
  if (source.scanPages !== undefined) return (stored, zero) => source.scanPages?.(stored, zero);
  return (stored, filledZero) =>
    source.blocks.forEach((block, b) => {
      for (let p = 0; p < block.pageCount; p++) {
        const where = source.pageKind(b, p);
        if (where.kind === "stored") stored(placement.index(b, p), where.chunk);
        else if (where.fill !== 0) filledZero(placement.index(b, p));
      }
    });
}

export class FillOrder {
  /** refs[first[c] .. first[c+1]) are the global indices of the pages stored in chunk c. */
  readonly #first: Uint32Array;
  readonly #refs: Uint32Array;
  /** Global indices of zero pages whose fill byte is not 0. */
  readonly filledZeroPages: Uint32Array;
  /** The background fill's chunks by position: pack order unless putFirst. */
  #sequence: Uint32Array;

  constructor(source: PageKinds, placement: Placement) {
    const count = source.chunks.count;
    const first = new Uint32Array(count + 1);
    const filled: number[] = [];
    const scan = pageScan(source, placement);
    // Two passes, no array of a chunk per page: count each chunk's pages, then place them.
    scan(
      (_, chunk) => {
        first[chunk + 1] = (first[chunk + 1] ?? 0) + 1;
      },
      (g) => void filled.push(g),
    );
    for (let c = 0; c < count; c++) first[c + 1] = (first[c + 1] ?? 0) + (first[c] ?? 0);
    const next = first.slice(0, count);
    const refs = new Uint32Array(first[count] ?? 0);
    scan(
      (g, chunk) => {
        const at = next[chunk] ?? 0;
        refs[at] = g;
        next[chunk] = at + 1;
      },
      () => undefined,
    );
    this.#first = first;
    this.#refs = refs;
    this.filledZeroPages = Uint32Array.from(filled);
    this.#sequence = Uint32Array.from({ length: count }, (_, c) => c);
  }

  /** The chunk the background fill takes at position `at` (0 ≤ at < chunkCount). */
  chunkAt(at: number): number {
    return this.#sequence[at] ?? 0;
  }

  /**
   * Puts `chunks` first in the background fill, in their order (repeats and chunks out of
   * range skipped); every other chunk follows in pack order. Call before the fill starts.
   */
  putFirst(chunks: Iterable<number>): void {
    const count = this.chunkCount;
    const sequence = new Uint32Array(count);
    const taken = new Uint8Array(count);
    let n = 0;
    for (const c of chunks) {
      if (!(c >= 0 && c < count) || taken[c] === 1) continue;
      taken[c] = 1;
      sequence[n++] = c;
    }
    for (let c = 0; c < count; c++) if (taken[c] === 0) sequence[n++] = c;
    this.#sequence = sequence;
  }

  get chunkCount(): number {
    return this.#first.length - 1;
  }

  /** Pages stored in the checkpoint (every one must be delivered). */
  get storedPages(): number {
    return this.#refs.length;
  }

  /** Pages a complete fill delivers: stored pages and zero pages with a non-zero fill. */
  get fillPages(): number {
    return this.#refs.length + this.filledZeroPages.length;
  }

  /** Fill pages `placement` has not sent yet. */
  unsentPages(placement: Pick<Placement, "isSent">): number {
    let unsent = 0;
    for (const g of this.#refs) if (!placement.isSent(g)) unsent++;
    for (const g of this.filledZeroPages) if (!placement.isSent(g)) unsent++;
    return unsent;
  }

  /** Global indices of the pages stored in `chunk`, ascending. */
  pagesOf(chunk: number): Uint32Array {
    return this.#refs.subarray(this.#first[chunk] ?? 0, this.#first[chunk + 1] ?? 0);
  }
}
