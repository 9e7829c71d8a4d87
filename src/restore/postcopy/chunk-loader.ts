/**
 * The page server's chunk loader, a pipeline of two stages (ADR 0017): a pack chunk's stored
 * bytes are read on this thread, asynchronously (libuv), up to RESTORE_READS_IN_FLIGHT_CHUNKS
 * reads at once; then a chunk worker (chunk-workers.ts) decompresses and verifies them. On
 * network storage a read is mostly waiting, so many reads overlap while two threads decode;
 * the main thread keeps answering requests for cached pages meanwhile. A disk chunk (or a
 * reader without workers) is read and verified on the main thread as before.
 *
 * A request's chunk goes before the fill's in both stages: the next read started, and the next
 * decode, is the oldest load of the highest urgency (chunk-cache.ts, Urgency: a page request,
 * then the working set before the guest runs, then fill, locality and read-ahead). A request's
 * chunk is read on this thread at once while the restore's SyncReads gate is open (ADR 0029:
 * a local store, reads fast), else it waits for at most the reads in progress and its own,
 * never behind the fill's queued read-ahead; it is decoded on this thread the moment it is
 * read (ADR 0018): a worker would add a message round trip and, while both decode fill
 * chunks, the rest of one of theirs. A request for a chunk the pool is reading or a worker is
 * decoding has it loaded here too, while the gate is open (ADR 0029). (Keeping a thread free
 * for requests was measured: p99 about the same, the fill up to 25 % slower.) When the store's
 * digest cache trusts the chunk's page digests (useDigests, ADR 0019), the request's own pages
 * are checked first and handed out (EarlyPages), then the others. The prelude's chunks are
 * decoded on this thread too, after any request's (ADR 0021): before the guest runs it has
 * nothing else to do, and the workers need not start before the fill.
 *
 * Invariants: a chunk's pages come back only after its hash was checked (the reader's own
 * decode code, on a worker or, for a request, here), or each page against digests that hash
 * to it; an early page only once it matched its own; a failed read or decode rejects with the
 * reader's error naming the chunk; every load settles (close rejects those waiting; a read
 * in flight rejects when it ends, a decode when the workers end). At most
 * RESTORE_READS_IN_FLIGHT_CHUNKS reads run; a fill read starts only while fewer than that are
 * read and not decoded yet. Buffers are pooled (chunk-buffers.ts): stored bytes (at most twice
 * the reads in flight plus one a thread) and decoded chunks (given back by the cache when it
 * evicts them), some kept touched for decodes here (ADR 0029).
 * The emulated slow store (read-throttle.ts) slows the read stage only: it models the store.
 */
import type { CheckpointReader, ChunkWorkers, PageDigests } from "../../checkpoint/index.ts";
import { PAGE_SIZE_BYTES, RESTORE_READS_IN_FLIGHT_CHUNKS } from "../../limits.ts";
import { asError } from "../../util/index.ts";
import { ChunkBuffers } from "./chunk-buffers.ts";
import type { ChunkLoader, EarlyPages, Urgency } from "./chunk-cache.ts";
import { type Load, type Loaded, RANK, takeNext, takeWaitedFor } from "./load-queue.ts";
import { type ReadAt, readStored, readStoredHere } from "./stored-read.ts";
import type { SyncReads } from "./sync-reads.ts";

/** What the loader needs of a checkpoint reader. */
export type LoaderReader = Pick<
  CheckpointReader,
  "decodeJobOf" | "workerError" | "readStoredChunk" | "decodeChunk"
>;

/** What the loader needs of the trusted page digests (ADR 0019). */
export type LoaderDigests = Pick<PageDigests, "forChunk" | "decompress" | "matches" | "corrupt">;

export class WorkerChunkLoader implements ChunkLoader {
  readonly #reader: LoaderReader;
  readonly #workers: ChunkWorkers;
  readonly #threads: number;
  readonly #readAt: ReadAt | undefined;
  readonly #readsMax: number;
  readonly #syncReads: SyncReads | null;
  /** Loads not read yet, oldest first. */
  readonly #toRead: Load[] = [];
  /** Loads read and not handed to a worker yet, oldest first. */
  readonly #toDecode: Load[] = [];
  readonly #buffers: ChunkBuffers;
  #digests: LoaderDigests | null = null;
  /** Loads being read asynchronously, and those a worker decodes. */
  readonly #reading = new Set<Load>();
  readonly #atWorker = new Set<Load>();
  /** Loads being read or decoded elsewhere that are also loaded again (#againHere). */
  readonly #again = new WeakSet<Load>();
  /** Loads settled by the first of their two ways (#first). */
  readonly #settled = new WeakSet<Load>();
  #closed = false;

  /** Takes `workers` over (close() ends them); they may still be starting. */
  constructor(
    reader: LoaderReader,
    workers: ChunkWorkers,
    opts: {
      readonly readAt?: ReadAt;
      readonly readsInFlight?: number;
      /** The restore's gate for reads on this thread: a request's chunk is read here. */
      readonly syncReads?: SyncReads;
    } = {},
  ) {
    this.#reader = reader;
    this.#threads = workers.size;
    this.#workers = workers;
    this.#readAt = opts.readAt;
    this.#readsMax = opts.readsInFlight ?? RESTORE_READS_IN_FLIGHT_CHUNKS;
    this.#syncReads = opts.syncReads ?? null;
    this.#buffers = new ChunkBuffers(2 * this.#readsMax + this.#threads);
  }

  readStoredChunk(chunk: number): Promise<Uint8Array> {
    return this.#reader.readStoredChunk(chunk);
  }

  decodeChunk(chunk: number, stored: Uint8Array): Uint8Array[] {
    return this.#reader.decodeChunk(chunk, stored);
  }

  /**
   * From now on a request's chunk whose digests `digests` trusts is answered page by page
   * (ADR 0019): EarlyPages gets its pages before the rest of the chunk is hashed.
   */
  useDigests(digests: LoaderDigests): void {
    this.#digests = digests;
  }

  loadOffThread(
    chunk: number,
    urgency: Urgency = "fill",
    early?: EarlyPages,
  ): Promise<Loaded> | null {
    const job = this.#reader.decodeJobOf(chunk);
    if (job === null) return null;
    if (this.#closed) return Promise.reject(new Error("The chunk loader is closed"));
    return new Promise<Loaded>((resolve, reject) => {
      const load = { chunk, job, urgency, early: early ?? null, stored: null, resolve, reject };
      this.#toRead.push(load);
      this.#pump();
    });
  }

  /** `pages` (one loaded chunk) are no longer referenced: their buffer serves another load. */
  recycle(pages: readonly Uint8Array[]): void {
    this.#buffers.recycle(pages);
  }

  /**
   * `chunk` is needed as soon as `urgency` says: its load, if not decoding yet, goes sooner
   * and takes `early` (if it has none yet).
   */
  promote(chunk: number, urgency: Urgency, early?: EarlyPages): void {
    for (const queue of [this.#toRead, this.#reading, this.#toDecode])
      for (const load of queue) {
        if (load.chunk !== chunk) continue;
        if (RANK[urgency] > RANK[load.urgency]) load.urgency = urgency;
        load.early ??= early ?? null;
      }
    if (urgency === "request")
      for (const load of [...this.#reading, ...this.#atWorker])
        if (load.chunk === chunk) this.#againHere(load, early);
    this.#pump();
  }

  /**
   * A request waits for `load`, which is being read in libuv's pool or decoded by a worker: it
   * is loaded again for the request, and the first way to finish settles it; what the other
   * yields goes back to the pools, never to the cache. While reads here are open the new load
   * is read and decoded here at once. When they are shut, only a worker's load is loaded again,
   * through the pool: a worker may still be starting (90–230 ms measured), a read in flight
   * is as near as a new one.
   */
  #againHere(load: Load, early?: EarlyPages): void {
    const here = this.#syncReads?.open === true;
    if (this.#again.has(load) || (!here && this.#reading.has(load))) return;
    this.#again.add(load);
    const resolve = (loaded: Loaded) => this.#first(load, loaded);
    this.#toRead.push({
      ...load,
      urgency: "request",
      early: early ?? load.early,
      stored: null,
      resolve,
    });
  }

  /** Settles `load` with the first of its two loads to finish; the other's pages are recycled. */
  #first(load: Load, loaded: Loaded): void {
    if (this.#settled.has(load)) {
      this.recycle(loaded.pages);
      return;
    }
    this.#settled.add(load);
    load.resolve(loaded);
  }

  /** Starts what both stages have room for. */
  #pump(): void {
    this.#readRequestsHere();
    for (let at = this.#hereAt(); at >= 0; at = this.#hereAt()) {
      const [load] = this.#toDecode.splice(at, 1);
      if (load !== undefined) this.#decodeHere(load);
    }
    while (!this.#closed && this.#atWorker.size < this.#threads) {
      const load = takeNext(this.#toDecode);
      if (load === undefined) break;
      this.#atWorker.add(load);
      this.#decode(load)
        .then((loaded) => this.#first(load, loaded), load.reject)
        .finally(() => {
          this.#atWorker.delete(load);
          this.#pump();
        });
    }
    while (!this.#closed && this.#reading.size < this.#readsMax) {
      // Reads done and waiting for a thread count too (they hold buffers), except for a load
      // somebody waits for: a request's read never waits for the fill's decode backlog.
      const backlog = this.#reading.size + this.#toDecode.length >= this.#readsMax;
      const load = backlog ? takeWaitedFor(this.#toRead) : takeNext(this.#toRead);
      if (load === undefined) break;
      this.#reading.add(load);
      this.#read(load).then(
        () => {
          this.#reading.delete(load);
          if (!this.#again.has(load)) {
            if (this.#closed) load.reject(closedError());
            else this.#toDecode.push(load);
          } else if (load.stored !== null) this.#buffers.keepStored(load.stored);
          this.#pump();
        },
        (error: Error) => {
          this.#reading.delete(load);
          load.reject(error);
          this.#pump();
        },
      );
    }
  }

  /**
   * Reads each request's chunk waiting to be read on this thread, while the restore's gate
   * allows (ADR 0029); #pump then decodes it here at once. No hop through libuv's pool: on two
   * cores shared with QEMU's vCPU and the fill's decoders each thread's wake-up may wait for a
   * core.
   */
  #readRequestsHere(): void {
    const reads = this.#syncReads;
    if (reads === null) return;
    for (;;) {
      const at = this.#toRead.findIndex((l) => l.urgency === "request");
      if (at < 0 || this.#closed || !reads.open) return;
      const [load] = this.#toRead.splice(at, 1);
      if (load === undefined) return;
      try {
        const buffer = this.#storedBuffer(load);
        readStoredHere(this.#reader, load, buffer, reads);
        load.stored = buffer;
      } catch (error) {
        load.reject(asError(error));
        continue;
      }
      this.#toDecode.push(load);
    }
  }

  /** Reads the chunk's stored bytes into a pooled buffer, through the emulated store if set. */
  async #read(load: Load): Promise<void> {
    const buffer = this.#storedBuffer(load);
    await readStored(this.#reader, load, buffer, this.#readAt);
    load.stored = buffer;
  }

  /** A pooled buffer for `load`'s stored bytes; throws the reader's error if they cannot fit. */
  #storedBuffer({ chunk, job }: Load): ArrayBuffer {
    const buffer = this.#buffers.forStored();
    if (job.storedBytes <= buffer.byteLength) return buffer;
    const failure = { id: -1, ok: false as const, buffer, error: "stored bytes exceed a chunk" };
    throw this.#reader.workerError(chunk, failure);
  }

  /** Where the next load to decode on this thread waits in #toDecode (read), or -1. */
  #hereAt(): number {
    if (this.#closed) return -1;
    const request = this.#toDecode.findIndex((l) => l.urgency === "request");
    return request >= 0 ? request : this.#toDecode.findIndex((l) => l.urgency === "prelude");
  }

  /**
   * Decodes and verifies a read chunk on this thread. Its pages are not copied: a raw chunk's
   * are views of the stored bytes, whose buffer then becomes the chunk's (adopt); a
   * compressed one's are views of the decompressed bytes.
   */
  #decodeHere(load: Load): void {
    const { chunk, job, stored } = load;
    if (stored === null) throw new Error(`chunk ${chunk} was decoded before it was read`);
    const digests = load.early === null ? null : this.#digests;
    const trusted = digests?.forChunk(chunk) ?? null;
    if (digests !== null && trusted !== null) {
      this.#decodePageByPage(load, stored, digests, trusted);
      return;
    }
    const pages = this.#decodeWith(
      load,
      stored,
      (bytes, into) => this.#reader.decodeChunk(chunk, bytes, into),
      (p) => p[0]?.buffer,
    );
    if (pages !== null) load.resolve({ pages, storedBytes: job.storedBytes });
  }

  /**
   * `decode` of `stored` into a pooled chunk buffer (ADR 0028), both buffers then settled
   * (ChunkBuffers.adopt); null when it threw, after rejecting `load`.
   */
  #decodeWith<T>(
    load: Load,
    stored: ArrayBuffer,
    decode: (bytes: Uint8Array, into: Uint8Array) => T,
    bufferOf: (decoded: T) => ArrayBufferLike | undefined,
  ): T | null {
    const into = this.#buffers.forHere();
    let decoded: T;
    try {
      decoded = decode(new Uint8Array(stored, 0, load.job.storedBytes), into);
    } catch (error) {
      this.#buffers.keepStored(stored);
      this.#buffers.keep(into.buffer);
      load.reject(asError(error));
      return null;
    }
    this.#buffers.adopt(stored, into, bufferOf(decoded));
    return decoded;
  }

  /**
   * #decodeHere with trusted page digests (ADR 0019): decompresses, gives `load.early` every
   * page that matches its digest, then checks the others; resolves only when all match.
   */
  #decodePageByPage(load: Load, stored: ArrayBuffer, d: LoaderDigests, trusted: Buffer): void {
    const { chunk, job } = load;
    const bytes = (b: Uint8Array, into: Uint8Array) => d.decompress(chunk, b, into);
    const raw = this.#decodeWith(load, stored, bytes, (r) => r.buffer);
    if (raw === null) return;
    const pages = Array.from({ length: job.pageCount }, (_, s) =>
      raw.subarray(s * PAGE_SIZE_BYTES, (s + 1) * PAGE_SIZE_BYTES),
    );
    const checked = new Uint8Array(job.pageCount); // 0 not yet, 1 matches, 2 does not
    const page = (slot: number): Uint8Array | null => {
      const p = pages[slot];
      if (p === undefined) return null;
      if (checked[slot] === 0) checked[slot] = d.matches(p, trusted, slot) ? 1 : 2;
      return checked[slot] === 1 ? p : null;
    };
    try {
      load.early?.(page);
    } catch (error) {
      load.reject(asError(error));
      return;
    }
    for (let s = 0; s < job.pageCount; s++) {
      if (page(s) !== null) continue;
      load.reject(d.corrupt(chunk));
      return;
    }
    load.resolve({ pages, storedBytes: job.storedBytes });
  }

  async #decode({ chunk, job, stored }: Load): Promise<Loaded> {
    if (stored === null) throw new Error(`chunk ${chunk} was decoded before it was read`);
    // One buffer per chunk, held by the cache while the chunk is: pages are views into it.
    const buffer = this.#buffers.forWorker();
    const { fd: _fd, offset: _offset, ...form } = job;
    const reply = await this.#workers.run({ kind: "decodeStored", ...form, buffer, stored });
    this.#buffers.own(reply.buffer); // the transfer back made a new ArrayBuffer over the memory
    if (reply.input !== undefined) this.#buffers.keepStored(reply.input);
    if (!reply.ok) throw this.#reader.workerError(chunk, reply);
    return { pages: pagesIn(reply.buffer, job.pageCount), storedBytes: job.storedBytes };
  }

  /** Ends the worker threads; loads waiting reject now, those reading when their read ends. */
  close(): Promise<void> {
    this.#closed = true;
    this.#buffers.close();
    for (const load of [...this.#toRead.splice(0), ...this.#toDecode.splice(0)])
      load.reject(closedError());
    return this.#workers.close();
  }
}

function closedError(): Error {
  return new Error("The chunk loader was closed while a chunk was loading");
}

/** Views of the first `count` pages of a chunk buffer, slot by slot. */
function pagesIn(buffer: ArrayBuffer, count: number): Uint8Array[] {
  return Array.from(
    { length: count },
    (_, s) => new Uint8Array(buffer, s * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES),
  );
}
