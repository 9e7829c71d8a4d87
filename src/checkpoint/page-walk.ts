/**
 * Sequential walks over a checkpoint: chunks in pack order with one chunk of read-ahead (the
 * next read overlaps this chunk's decompression), and every page exactly once by way of a
 * reverse index chunk → pages (a counting sort: 4 bytes a stored page, no objects).
 *
 * Invariants: memory is bounded by two chunks plus the reverse index; a read-ahead that is
 * abandoned (the visitor threw) never rejects unobserved.
 */
import { InvalidCheckpointError } from "../errors.ts";
import { VERIFY_PROBLEMS_MAX } from "../limits.ts";
import type { ChunkTable } from "./chunk-table.ts";
import { FILL_MASK, KIND_SHIFT, PageKind, SLOT_BITS, SLOT_MASK } from "./format.ts";
import type { PageMap } from "./page-map.ts";

/** Receives each page; `data` is null for a zero page (then `fill` is its byte). */
export type PageVisitor = (
  blockIndex: number,
  pageIndex: number,
  data: Uint8Array | null,
  fill: number,
) => void | Promise<void>;

/** What the walks need of a reader. */
export interface ChunkSource {
  readonly chunks: ChunkTable;
  readonly pageMap: PageMap;
  readStoredChunk(chunk: number): Promise<Uint8Array>;
  decodeChunk(chunk: number, stored: Uint8Array): Uint8Array[];
}

type Read = { ok: true; stored: Uint8Array } | { ok: false; error: unknown };

/**
 * Calls `onChunk` for every chunk `wanted` accepts (all when null), in order. With `problems`,
 * an InvalidCheckpointError of one chunk is recorded there and the walk goes on (verify);
 * without, it propagates.
 */
export async function walkChunks(
  src: ChunkSource,
  wanted: ((chunk: number) => boolean) | null,
  onChunk: (chunk: number, stored: Uint8Array) => void | Promise<void>,
  problems: string[] | null,
): Promise<void> {
  const count = src.chunks.count;
  const nextFrom = (c: number): number => {
    let n = c + 1;
    while (n < count && wanted !== null && !wanted(n)) n++;
    return n;
  };
  const read = (c: number): Promise<Read> =>
    src.readStoredChunk(c).then(
      (stored): Read => ({ ok: true, stored }),
      (error: unknown): Read => ({ ok: false, error }),
    );
  let chunk = nextFrom(-1);
  let pending = chunk < count ? read(chunk) : null;
  let failed = 0;
  while (pending !== null) {
    const result = await pending;
    const next = nextFrom(chunk);
    pending = next < count ? read(next) : null;
    try {
      if (!result.ok) throw result.error;
      await onChunk(chunk, result.stored);
    } catch (error) {
      if (problems === null || !(error instanceof InvalidCheckpointError)) throw error;
      failed += 1;
      if (problems.length < VERIFY_PROBLEMS_MAX) problems.push(error.reason);
    }
    chunk = next;
  }
  if (problems !== null && failed > problems.length)
    problems.push(`and ${failed - problems.length} more bad chunks`);
}

/**
 * Every page once: zero pages in address order, then stored pages chunk by chunk (pack chunks,
 * then disk chunks: blocks of frozen layers in layer and offset order).
 */
export async function visitPages(src: ChunkSource, visit: PageVisitor): Promise<void> {
  const map = src.pageMap;
  const entries = map.entries;
  const starts = map.blockStarts;
  let block = 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] ?? 0;
    if (e >>> KIND_SHIFT !== PageKind.zero) continue;
    while (i >= (starts[block + 1] ?? 0)) block++;
    const r = visit(block, i - (starts[block] ?? 0), null, e & FILL_MASK);
    if (r) await r;
  }
  const { first, refs } = reverseIndex(map, src.chunks.count);
  await walkChunks(
    src,
    (c) => (first[c + 1] ?? 0) > (first[c] ?? 0),
    async (chunk, stored) => {
      const pages = src.decodeChunk(chunk, stored);
      let b = 0;
      for (let k = first[chunk] ?? 0; k < (first[chunk + 1] ?? 0); k++) {
        const i = refs[k] ?? 0;
        if (i < (starts[b] ?? 0) || i >= (starts[b + 1] ?? 0)) b = map.blockOf(i);
        const r = visit(b, i - (starts[b] ?? 0), pages[(entries[i] ?? 0) & SLOT_MASK] ?? null, 0);
        if (r) await r;
      }
    },
    null,
  );
}

/** refs[first[c] .. first[c+1]) are the global page indices stored in chunk c, ascending. */
function reverseIndex(map: PageMap, chunkCount: number): { first: Uint32Array; refs: Uint32Array } {
  const entries = map.entries;
  const first = new Uint32Array(chunkCount + 1);
  const chunkOf = (e: number) => (e & ((1 << KIND_SHIFT) - 1)) >>> SLOT_BITS;
  let stored = 0;
  for (const e of entries) {
    if (e >>> KIND_SHIFT === PageKind.zero) continue; // stored or disk duplicate
    const slot = chunkOf(e) + 1;
    first[slot] = (first[slot] ?? 0) + 1;
    stored++;
  }
  for (let c = 0; c < chunkCount; c++) first[c + 1] = (first[c + 1] ?? 0) + (first[c] ?? 0);
  const next = first.slice(0, chunkCount);
  const refs = new Uint32Array(stored);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] ?? 0;
    if (e >>> KIND_SHIFT === PageKind.zero) continue; // stored or disk duplicate
    const c = chunkOf(e);
    refs[next[c] ?? 0] = i;
    next[c] = (next[c] ?? 0) + 1;
  }
  return { first, refs };
}
