/**
 * The page server's chunk loader: pack chunks are read, decompressed and verified in chunk
 * worker threads (chunk-workers.ts, as eager restore does), so the main thread keeps answering
 * requests for cached pages while a chunk is decoded; a disk chunk (or a reader without
 * workers) is read and verified on the main thread as before.
 *
 * A request's chunk goes before the fill's: at most one job per thread is in the workers at a
 * time, and the next one taken is the oldest urgent load (a page request, or the working set
 * before the guest runs, waits for it), else the oldest other load (fill, locality,
 * read-ahead). A request waits for at most the decodes in progress and its own, never behind
 * the fill's queued read-ahead. (Keeping a thread free for requests was measured: p99 about
 * the same, the fill up to 25 % slower.)
 *
 * Invariants: a chunk's pages come back only after the worker checked its hash (the reader's
 * own decode code); a failed decode rejects with the reader's error naming the chunk; every
 * load settles (close rejects those not started). Reads still go through the emulated slow
 * store when one is set (read-throttle.ts): the worker's job starts when the throttle lets the
 * read through.
 */
import {
  type CheckpointReader,
  type ChunkWorkers,
  type DecodeInput,
  throttledRead,
} from "../../checkpoint/index.ts";
import { CHUNK_PAGES_MAX, PAGE_SIZE_BYTES, RESTORE_CHUNK_BUFFERS_KEPT } from "../../limits.ts";
import type { ChunkLoader } from "./chunk-cache.ts";

interface Load {
  readonly chunk: number;
  readonly job: DecodeInput;
  urgent: boolean;
  readonly resolve: (loaded: Loaded) => void;
  readonly reject: (error: Error) => void;
}

const CHUNK_BYTES_MAX = CHUNK_PAGES_MAX * PAGE_SIZE_BYTES;

type Loaded = { pages: Uint8Array[]; storedBytes: number };

export class WorkerChunkLoader implements ChunkLoader {
  readonly #reader: CheckpointReader;
  readonly #workers: ChunkWorkers;
  readonly #threads: number;
  /** Loads not handed to a worker yet, oldest first. */
  readonly #waiting: Load[] = [];
  /** Chunk buffers the cache has evicted, for the next loads (no 256 KiB allocation each). */
  readonly #free: ArrayBuffer[] = [];
  /** Buffers this loader made: only those are recycled (never a main-thread decode's). */
  readonly #own = new WeakSet<ArrayBuffer>();
  #running = 0;
  #closed = false;

  /** Takes `workers` over (close() ends them); they may still be starting. */
  constructor(reader: CheckpointReader, workers: ChunkWorkers) {
    this.#reader = reader;
    this.#threads = workers.size;
    this.#workers = workers;
  }

  readStoredChunk(chunk: number): Promise<Uint8Array> {
    return this.#reader.readStoredChunk(chunk);
  }

  decodeChunk(chunk: number, stored: Uint8Array): Uint8Array[] {
    return this.#reader.decodeChunk(chunk, stored);
  }

  loadOffThread(chunk: number, urgent = false): Promise<Loaded> | null {
    const job = this.#reader.decodeJobOf(chunk);
    if (job === null) return null;
    if (this.#closed) return Promise.reject(new Error("The chunk loader is closed"));
    return new Promise<Loaded>((resolve, reject) => {
      this.#waiting.push({ chunk, job, urgent, resolve, reject });
      this.#startNext();
    });
  }

  /** `pages` (one loaded chunk) are no longer referenced: their buffer serves another load. */
  recycle(pages: readonly Uint8Array[]): void {
    const buffer = pages[0]?.buffer;
    if (!(buffer instanceof ArrayBuffer) || !this.#own.has(buffer)) return;
    if (this.#free.length < RESTORE_CHUNK_BUFFERS_KEPT) this.#free.push(buffer);
  }

  /** A page request now waits for `chunk`: its load, if not started, goes first. */
  promote(chunk: number): void {
    for (const load of this.#waiting) if (load.chunk === chunk) load.urgent = true;
  }

  #startNext(): void {
    while (this.#running < this.#threads && this.#waiting.length > 0) {
      let at = this.#waiting.findIndex((l) => l.urgent);
      if (at < 0) at = 0;
      const [load] = this.#waiting.splice(at, 1);
      if (load === undefined) return;
      this.#running += 1;
      this.#run(load)
        .then(load.resolve, load.reject)
        .finally(() => {
          this.#running -= 1;
          this.#startNext();
        });
    }
  }

  async #run({ chunk, job }: Load): Promise<Loaded> {
    // One buffer per chunk, held by the cache while the chunk is: pages are views into it.
    // Not zero-filled: the worker writes every byte the pages cover before they are read.
    const buffer = this.#free.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES_MAX).buffer;
    const reply = await throttledRead(job.storedBytes, () =>
      this.#workers.run({ kind: "decode", ...job, buffer, wantDigests: false }),
    );
    this.#own.add(reply.buffer); // the transfer back made a new ArrayBuffer over the memory
    if (!reply.ok) throw this.#reader.workerError(chunk, reply);
    const pages: Uint8Array[] = [];
    for (let s = 0; s < job.pageCount; s++)
      pages.push(new Uint8Array(reply.buffer, s * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES));
    return { pages, storedBytes: job.storedBytes };
  }

  /** Ends the worker threads; loads still running reject. */
  close(): Promise<void> {
    this.#closed = true;
    const error = new Error("The chunk loader was closed while a chunk was loading");
    for (const load of this.#waiting.splice(0)) load.reject(error);
    return this.#workers.close();
  }
}
