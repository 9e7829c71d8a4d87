/**
 * FillOrder: which pages a lazy restore must deliver and in what order the background pushes
 * them. Stored pages go chunk by chunk in pack order (the checkpoint's locality order: one
 * chunk read serves all its pages), each chunk's pages ascending; zero pages with a non-zero
 * fill byte (rare: QEMU sends fill 0) go first, as ZERO records. Zero pages with fill 0 are
 * never pushed: a discarded page the destination never receives reads as zero (§6.4).
 *
 * Memory: 4 bytes a stored page (the reverse index) plus 4 bytes a chunk.
 */
import type { PageLocation } from "../../checkpoint/index.ts";
import type { Placement } from "./placement.ts";

/** What FillOrder needs of a checkpoint reader. */
export interface PageKinds {
  readonly blocks: readonly { readonly pageCount: number }[];
  readonly chunks: { readonly count: number };
  pageKind(block: number, page: number): PageLocation;
}

export class FillOrder {
  /** refs[first[c] .. first[c+1]) are the global indices of the pages stored in chunk c. */
  readonly #first: Uint32Array;
  readonly #refs: Uint32Array;
  /** Global indices of zero pages whose fill byte is not 0. */
  readonly filledZeroPages: Uint32Array;

  constructor(source: PageKinds, placement: Placement) {
    const count = source.chunks.count;
    const chunkOf = new Int32Array(placement.totalPages).fill(-1);
    const first = new Uint32Array(count + 1);
    const filled: number[] = [];
    source.blocks.forEach((block, b) => {
      for (let p = 0; p < block.pageCount; p++) {
        const g = placement.index(b, p);
        const where = source.pageKind(b, p);
        if (where.kind === "stored") {
          chunkOf[g] = where.chunk;
          first[where.chunk + 1] = (first[where.chunk + 1] ?? 0) + 1;
        } else if (where.fill !== 0) {
          filled.push(g);
        }
      }
    });
    for (let c = 0; c < count; c++) first[c + 1] = (first[c + 1] ?? 0) + (first[c] ?? 0);
    const next = first.slice(0, count);
    const refs = new Uint32Array(first[count] ?? 0);
    chunkOf.forEach((c, g) => {
      if (c < 0) return;
      refs[next[c] ?? 0] = g;
      next[c] = (next[c] ?? 0) + 1;
    });
    this.#first = first;
    this.#refs = refs;
    this.filledZeroPages = Uint32Array.from(filled);
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

  /** Global indices of the pages stored in `chunk`, ascending. */
  pagesOf(chunk: number): Uint32Array {
    return this.#refs.subarray(this.#first[chunk] ?? 0, this.#first[chunk + 1] ?? 0);
  }
}
