/**
 * The page server's chunk loader, a pipeline of two stages (ADR 0017): a pack chunk's stored
 * bytes are read on this thread, asynchronously (libuv), up to RESTORE_READS_IN_FLIGHT_CHUNKS
 * reads at once; then a chunk worker (chunk-workers.ts) decompresses and verifies them. On
 * network storage a read is mostly waiting, so many reads overlap while two threads decode;
 * the main thread keeps answering requests for cached pages meanwhile. A disk chunk (or a
 * reader without workers) is read and verified on the main thread as before.
 *
 * A request's chunk goes before the fill's in both stages: the next read started, and the next
 * decode, is the oldest urgent load's (a page request, or the working set before the guest
 * runs, waits for it), else the oldest other load's (fill, locality, read-ahead). A request
 * waits for at most the reads and decodes in progress and its own, never behind the fill's
 * queued read-ahead. (Keeping a thread free for requests was measured: p99 about the same, the
 * fill up to 25 % slower.)
 *
 * Invariants: a chunk's pages come back only after the worker checked its hash (the reader's
 * own decode code); a failed read or decode rejects with the reader's error naming the chunk;
 * every load settles (close rejects those waiting; a read in flight rejects when it ends, a
 * decode when the workers end). At most RESTORE_READS_IN_FLIGHT_CHUNKS reads run; a fill read
 * starts only while fewer than that are read and not decoded yet. Buffers are pooled: stored
 * bytes (at most twice the reads in flight plus one a thread) and decoded chunks (given back
 * by the cache when it evicts them). The emulated slow store (read-throttle.ts) slows the read
 * stage only: it models the store.
 */
import { read } from "node:fs";
import {
  type CheckpointReader,
  type ChunkWorkers,
  type DecodeInput,
  throttledRead,
} from "../../checkpoint/index.ts";
import {
  CHUNK_PAGES_MAX,
  PAGE_SIZE_BYTES,
  RESTORE_CHUNK_BUFFERS_KEPT,
  RESTORE_READS_IN_FLIGHT_CHUNKS,
} from "../../limits.ts";
import type { ChunkLoader } from "./chunk-cache.ts";

/** What the loader needs of a checkpoint reader. */
export type LoaderReader = Pick<
  CheckpointReader,
  "decodeJobOf" | "workerError" | "readStoredChunk" | "decodeChunk"
>;

/** Reads into `into` at `position` of `fd`; resolves with the bytes read (0 at end of file). */
export type ReadAt = (fd: number, into: Uint8Array, position: number) => Promise<number>;

interface Load {
  readonly chunk: number;
  readonly job: DecodeInput;
  urgent: boolean;
  /** The stored bytes once read (the read stage's output, the decode stage's input). */
  stored: ArrayBuffer | null;
  readonly resolve: (loaded: Loaded) => void;
  readonly reject: (error: Error) => void;
}

const CHUNK_BYTES_MAX = CHUNK_PAGES_MAX * PAGE_SIZE_BYTES;

type Loaded = { pages: Uint8Array[]; storedBytes: number };

export class WorkerChunkLoader implements ChunkLoader {
  readonly #reader: LoaderReader;
  readonly #workers: ChunkWorkers;
  readonly #threads: number;
  readonly #readAt: ReadAt;
  readonly #readsMax: number;
  /** Loads not read yet, oldest first. */
  readonly #toRead: Load[] = [];
  /** Loads read and not handed to a worker yet, oldest first. */
  readonly #toDecode: Load[] = [];
  /** Chunk buffers the cache has evicted, for the next loads (no 256 KiB allocation each). */
  readonly #free: ArrayBuffer[] = [];
  /** Stored-bytes buffers back from the workers, for the next reads. */
  readonly #freeStored: ArrayBuffer[] = [];
  /** Buffers this loader made: only those are recycled (never a main-thread decode's). */
  readonly #own = new WeakSet<ArrayBuffer>();
  #reading = 0;
  #decoding = 0;
  #closed = false;

  /** Takes `workers` over (close() ends them); they may still be starting. */
  constructor(
    reader: LoaderReader,
    workers: ChunkWorkers,
    opts: { readonly readAt?: ReadAt; readonly readsInFlight?: number } = {},
  ) {
    this.#reader = reader;
    this.#threads = workers.size;
    this.#workers = workers;
    this.#readAt = opts.readAt ?? readAt;
    this.#readsMax = opts.readsInFlight ?? RESTORE_READS_IN_FLIGHT_CHUNKS;
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
      this.#toRead.push({ chunk, job, urgent, stored: null, resolve, reject });
      this.#pump();
    });
  }

  /** `pages` (one loaded chunk) are no longer referenced: their buffer serves another load. */
  recycle(pages: readonly Uint8Array[]): void {
    const buffer = pages[0]?.buffer;
    if (!(buffer instanceof ArrayBuffer) || !this.#own.has(buffer)) return;
    if (this.#free.length < RESTORE_CHUNK_BUFFERS_KEPT) this.#free.push(buffer);
  }

  /** A page request now waits for `chunk`: its load, if not read or decoding yet, goes first. */
  promote(chunk: number): void {
    for (const load of this.#toRead) if (load.chunk === chunk) load.urgent = true;
    for (const load of this.#toDecode) if (load.chunk === chunk) load.urgent = true;
  }

  /** Starts what both stages have room for. */
  #pump(): void {
    while (!this.#closed && this.#decoding < this.#threads) {
      const load = takeNext(this.#toDecode);
      if (load === undefined) break;
      this.#decoding += 1;
      this.#decode(load)
        .then(load.resolve, load.reject)
        .finally(() => {
          this.#decoding -= 1;
          this.#pump();
        });
    }
    while (!this.#closed && this.#reading < this.#readsMax) {
      // Reads done and waiting for a thread count too (they hold buffers), except for an
      // urgent load: a request's read never waits for the fill's decode backlog.
      const backlog = this.#reading + this.#toDecode.length >= this.#readsMax;
      const load = backlog ? takeUrgent(this.#toRead) : takeNext(this.#toRead);
      if (load === undefined) break;
      this.#reading += 1;
      this.#read(load).then(
        () => {
          this.#reading -= 1;
          if (this.#closed) load.reject(closedError());
          else this.#toDecode.push(load);
          this.#pump();
        },
        (error: Error) => {
          this.#reading -= 1;
          load.reject(error);
          this.#pump();
        },
      );
    }
  }

  /** Reads the chunk's stored bytes into a pooled buffer, through the emulated store if set. */
  async #read(load: Load): Promise<void> {
    const { chunk, job } = load;
    const buffer = this.#freeStored.pop() ?? new ArrayBuffer(CHUNK_BYTES_MAX);
    if (job.storedBytes > buffer.byteLength) {
      const failure = { id: -1, ok: false as const, buffer, error: "stored bytes exceed a chunk" };
      throw this.#reader.workerError(chunk, failure);
    }
    const into = new Uint8Array(buffer, 0, job.storedBytes);
    await throttledRead(job.storedBytes, async () => {
      let done = 0;
      while (done < job.storedBytes) {
        let n: number;
        try {
          n = await this.#readAt(job.fd, into.subarray(done), job.offset + done);
        } catch (error) {
          const failure = { id: -1, ok: false as const, buffer, error: describe(error) };
          throw this.#reader.workerError(chunk, failure);
        }
        if (n === 0)
          throw this.#reader.workerError(chunk, { id: -1, ok: false, buffer, ended: true });
        done += n;
      }
    });
    load.stored = buffer;
  }

  async #decode({ chunk, job, stored }: Load): Promise<Loaded> {
    if (stored === null) throw new Error(`chunk ${chunk} was decoded before it was read`);
    // One buffer per chunk, held by the cache while the chunk is: pages are views into it.
    // Not zero-filled: the worker writes every byte the pages cover before they are read.
    const buffer = this.#free.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES_MAX).buffer;
    const { fd: _fd, offset: _offset, ...form } = job;
    const reply = await this.#workers.run({ kind: "decodeStored", ...form, buffer, stored });
    this.#own.add(reply.buffer); // the transfer back made a new ArrayBuffer over the memory
    if (reply.input !== undefined && this.#freeStored.length < 2 * this.#readsMax + this.#threads)
      this.#freeStored.push(reply.input);
    if (!reply.ok) throw this.#reader.workerError(chunk, reply);
    const pages: Uint8Array[] = [];
    for (let s = 0; s < job.pageCount; s++)
      pages.push(new Uint8Array(reply.buffer, s * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES));
    return { pages, storedBytes: job.storedBytes };
  }

  /** Ends the worker threads; loads waiting reject now, those reading when their read ends. */
  close(): Promise<void> {
    this.#closed = true;
    for (const load of [...this.#toRead.splice(0), ...this.#toDecode.splice(0)])
      load.reject(closedError());
    return this.#workers.close();
  }
}

/** Removes and returns the oldest urgent load of `queue`, else its oldest. */
function takeNext(queue: Load[]): Load | undefined {
  const at = queue.findIndex((l) => l.urgent);
  return queue.splice(at < 0 ? 0 : at, 1)[0];
}

/** Removes and returns the oldest urgent load of `queue`, if any. */
function takeUrgent(queue: Load[]): Load | undefined {
  const at = queue.findIndex((l) => l.urgent);
  return at < 0 ? undefined : queue.splice(at, 1)[0];
}

function closedError(): Error {
  return new Error("The chunk loader was closed while a chunk was loading");
}

function readAt(fd: number, into: Uint8Array, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, into, 0, into.byteLength, position, (error, n) => {
      if (error === null) resolve(n);
      else reject(error);
    });
  });
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  return code === undefined ? error.message : `${error.message} (${code})`;
}
