/**
 * Walks over a checkpoint: chunks in pack order, and every page exactly once by way of a
 * reverse index chunk → pages (a counting sort: 4 bytes a stored page, no objects). The
 * sequential walk reads one chunk ahead (the next read overlaps this chunk's decompression);
 * the parallel walk has chunk workers read, decompress and verify several chunks ahead while
 * this thread consumes them in order (ADR 0013).
 *
 * Invariants: memory is bounded by a few chunks plus the reverse index; a read-ahead that is
 * abandoned (the visitor threw) never rejects unobserved, and a parallel walk returns only
 * once no worker still reads for it (the reader may close its files right after).
 */
import { InvalidCheckpointError } from "../../errors.ts";
import {
  CHUNK_PAGES_MAX,
  CHUNK_WORKER_QUEUE_CHUNKS,
  PAGE_SIZE_BYTES,
  VERIFY_PROBLEMS_MAX,
} from "../../limits.ts";
import type { ChunkTable } from "../format/chunk-table.ts";
import { FILL_MASK, KIND_SHIFT, PageKind, SLOT_BITS, SLOT_MASK } from "../format/format.ts";
import type { PageMap } from "../format/page-map.ts";
import type { ChunkWorkers, DecodeFailure, DecodeInput } from "./chunk-workers.ts";

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

/** What a parallel walk needs of a reader beyond ChunkSource. */
export interface ParallelChunkSource extends ChunkSource {
  /** A worker's decode job for the chunk, or null to decode it on this thread. */
  decodeJobOf(chunk: number): DecodeInput | null;
  workerError(chunk: number, failure: DecodeFailure): Error;
}

type Read = { ok: true; stored: Uint8Array } | { ok: false; error: unknown };

/** Receives each chunk's verified pages, in slot order; they are valid until it returns. */
export type ChunkConsumer = (chunk: number, pages: readonly Uint8Array[]) => void | Promise<void>;

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

type Decoded =
  | {
      readonly ok: true;
      readonly pages: readonly Uint8Array[];
      readonly buffer: ArrayBuffer | null;
    }
  | { readonly ok: false; readonly error: unknown; readonly buffer: ArrayBuffer | null };

/**
 * walkChunks with `workers` decoding up to CHUNK_WORKER_QUEUE_CHUNKS chunks ahead; `onChunk`
 * gets decoded, verified pages (in reused buffers: valid only until it returns or its Promise
 * settles). Disk chunks are read and verified on this thread, in their turn.
 */
export async function walkChunksParallel(
  src: ParallelChunkSource,
  wanted: ((chunk: number) => boolean) | null,
  onChunk: ChunkConsumer,
  problems: string[] | null,
  workers: ChunkWorkers,
): Promise<void> {
  const count = src.chunks.count;
  const nextFrom = (c: number): number => {
    let n = c + 1;
    while (n < count && wanted !== null && !wanted(n)) n++;
    return n;
  };
  const free: ArrayBuffer[] = [];
  const submit = (c: number): Promise<Decoded> => {
    const job = src.decodeJobOf(c);
    if (job === null) {
      // decodeChunk runs inside then(): its throw is caught there too, so a Decoded never
      // rejects while it waits in the queue (an unhandled rejection otherwise).
      return src
        .readStoredChunk(c)
        .then((stored): Decoded => ({ ok: true, pages: src.decodeChunk(c, stored), buffer: null }))
        .catch((error: unknown): Decoded => ({ ok: false, error, buffer: null }));
    }
    const buffer = free.pop() ?? new ArrayBuffer(CHUNK_PAGES_MAX * PAGE_SIZE_BYTES);
    return workers
      .run({ kind: "decode", ...job, buffer, wantDigests: false })
      .then(
        (reply): Decoded =>
          reply.ok
            ? { ok: true, pages: pagesOf(reply.buffer, job.pageCount), buffer: reply.buffer }
            : { ok: false, error: src.workerError(c, reply), buffer: reply.buffer },
      )
      .catch((error: unknown): Decoded => ({ ok: false, error, buffer: null }));
  };
  const queue: { chunk: number; result: Promise<Decoded> }[] = [];
  let next = nextFrom(-1);
  const fill = (): void => {
    while (queue.length < CHUNK_WORKER_QUEUE_CHUNKS && next < count) {
      queue.push({ chunk: next, result: submit(next) });
      next = nextFrom(next);
    }
  };
  let failed = 0;
  try {
    fill();
    for (let head = queue.shift(); head !== undefined; head = queue.shift()) {
      const r = await head.result;
      fill(); // keep the workers busy while this chunk is consumed
      try {
        if (!r.ok) throw r.error;
        await onChunk(head.chunk, r.pages);
      } catch (error) {
        if (problems === null || !(error instanceof InvalidCheckpointError)) throw error;
        failed += 1;
        if (problems.length < VERIFY_PROBLEMS_MAX) problems.push(error.reason);
      } finally {
        if (r.buffer !== null) free.push(r.buffer);
      }
    }
  } finally {
    await Promise.all(queue.map((q) => q.result)); // settles only: Decoded never rejects
  }
  if (problems !== null && failed > problems.length)
    problems.push(`and ${failed - problems.length} more bad chunks`);
}

function pagesOf(buffer: ArrayBuffer, pageCount: number): Uint8Array[] {
  return Array.from(
    { length: pageCount },
    (_, s) => new Uint8Array(buffer, s * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES),
  );
}

/**
 * Every page once: zero pages in address order, then stored pages chunk by chunk (pack chunks,
 * then disk chunks: blocks of frozen layers in layer and offset order). With `workers` (and a
 * reader as `src`), chunks are decoded by them (walkChunksParallel) and a page's bytes are
 * valid only during its visit.
 */
export async function visitPages(
  src: ChunkSource | ParallelChunkSource,
  visit: PageVisitor,
  workers: ChunkWorkers | null = null,
): Promise<void> {
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
  const wanted = (c: number): boolean => (first[c + 1] ?? 0) > (first[c] ?? 0);
  const onPages = async (chunk: number, pages: readonly Uint8Array[]): Promise<void> => {
    let b = 0;
    for (let k = first[chunk] ?? 0; k < (first[chunk + 1] ?? 0); k++) {
      const i = refs[k] ?? 0;
      if (i < (starts[b] ?? 0) || i >= (starts[b + 1] ?? 0)) b = map.blockOf(i);
      const r = visit(b, i - (starts[b] ?? 0), pages[(entries[i] ?? 0) & SLOT_MASK] ?? null, 0);
      if (r) await r;
    }
  };
  if (workers !== null && "decodeJobOf" in src) {
    await walkChunksParallel(src, wanted, onPages, null, workers);
    return;
  }
  await walkChunks(
    src,
    wanted,
    (chunk, stored) => onPages(chunk, src.decodeChunk(chunk, stored)),
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
