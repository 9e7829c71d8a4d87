/**
 * ChunkWorkers: a small pool of worker threads (chunk-worker.ts) that decode and verify pack
 * chunks, hash pages and compress chunks, so eager restore, save and the commit's read-back
 * spread SHA-256 and zstd over the machine's cores while the main thread moves bytes between
 * sockets and files (ADR 0013).
 *
 * Invariants: a job's buffer is transferred to its worker and comes back in the reply (the
 * caller keeps reusing a few buffers: no allocation per chunk); every job's Promise settles
 * (a worker that dies rejects its jobs, and the pool then refuses new ones); the pool keeps
 * the process alive only while a job is pending, and `close` ends every thread.
 */
import assert from "node:assert/strict";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { ChunkProblem } from "../format/chunk-decode.ts";

interface JobBase {
  readonly id: number;
  /** Moved to the worker and back: the chunk's or batch's bytes. */
  readonly buffer: ArrayBuffer;
}

/** Read `storedBytes` at `offset` of `fd`, decode into `buffer` and check the chunk hash. */
export interface DecodeJob extends JobBase {
  readonly kind: "decode";
  readonly fd: number;
  readonly offset: number;
  readonly storedBytes: number;
  readonly codec: number;
  readonly pageCount: number;
  /** A copy, never a view of the chunk table (a view would clone the whole table). */
  readonly sha256: Uint8Array;
  readonly wantDigests: boolean;
}

/**
 * Decode the first `storedBytes` of `stored` (read by the caller, off the worker: the page
 * server reads many chunks at once on the main thread, ADR 0017) into `buffer` and check the
 * chunk hash; `stored` comes back in the reply's `input`.
 */
export interface DecodeStoredJob extends JobBase {
  readonly kind: "decodeStored";
  readonly stored: ArrayBuffer;
  readonly storedBytes: number;
  readonly codec: number;
  readonly pageCount: number;
  /** A copy, never a view of the chunk table (a view would clone the whole table). */
  readonly sha256: Uint8Array;
}

/** The SHA-256 of each of the first `pages` pages of `buffer`. */
export interface DigestJob extends JobBase {
  readonly kind: "digest";
  readonly pages: number;
}

/** Compress the first `rawBytes` of `buffer` in place (stored raw when that is not smaller). */
export interface CompressJob extends JobBase {
  readonly kind: "compress";
  readonly rawBytes: number;
  readonly level: number;
}

/**
 * Read `bytes` at `offset` of `fd` into `buffer` and return their one BLAKE3 (a RAM image's
 * region, restore/ram-image.ts, ADR 0032). A file that ends early is `ended`. A region of zero
 * bytes gets the BLAKE3 of zeros without hashing: comparing with zeros is faster still.
 */
export interface RegionDigestJob extends JobBase {
  readonly kind: "regionDigest";
  readonly fd: number;
  readonly offset: number;
  readonly bytes: number;
}

export type ChunkJob = DecodeJob | DecodeStoredJob | DigestJob | CompressJob | RegionDigestJob;

/** What a reader says about a chunk for a decode job (CheckpointReader.decodeJobOf). */
export type DecodeInput = Omit<DecodeJob, "id" | "kind" | "buffer" | "wantDigests">;

/** A chunk's stored form after a compress job: codec id and its byte count. */
export interface StoredForm {
  readonly codec: number;
  readonly bytes: number;
}

export type ChunkReply =
  | {
      readonly id: number;
      readonly ok: true;
      readonly buffer: ArrayBuffer;
      /** Page digests (decode with wantDigests, digest jobs), a region's digest, else null. */
      readonly digests: Uint8Array | null;
      readonly stored?: StoredForm;
      /** A decodeStored job's stored bytes, given back for the next read. */
      readonly input?: ArrayBuffer;
    }
  | {
      readonly id: number;
      readonly ok: false;
      readonly buffer: ArrayBuffer;
      /** Decode: the chunk is bad. */
      readonly problem?: ChunkProblem;
      /** Decode, region digest: the file ended inside the chunk or region. */
      readonly ended?: true;
      /** Anything else the worker threw (an I/O error), as text. */
      readonly error?: string;
      /** A decodeStored job's stored bytes, given back for the next read. */
      readonly input?: ArrayBuffer;
    };

/** Why a decode job failed (CheckpointReader.workerError words it). */
export type DecodeFailure = Extract<ChunkReply, { readonly ok: false }>;

/** A job as its caller gives it: the pool numbers it. */
type JobInput =
  | Omit<DecodeJob, "id">
  | Omit<DecodeStoredJob, "id">
  | Omit<DigestJob, "id">
  | Omit<CompressJob, "id">
  | Omit<RegionDigestJob, "id">;

interface Pending {
  readonly resolve: (reply: ChunkReply) => void;
  readonly reject: (error: Error) => void;
}

interface Thread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
}

/** The worker's module beside this one: .ts when run from source, .js when compiled. */
const WORKER_URL = new URL(
  `./chunk-worker${extname(fileURLToPath(import.meta.url))}`,
  import.meta.url,
);

export class ChunkWorkers {
  readonly size: number;
  readonly #threads: Thread[] = [];
  #nextId = 0;
  #failure: Error | null = null;
  #closed = false;

  private constructor(count: number, now: boolean) {
    this.size = count;
    if (now) this.#spawnAll();
  }

  /** Starts `count` threads; they load in the background and take jobs at once (queued). */
  static start(count: number): ChunkWorkers {
    assert(Number.isInteger(count) && count >= 1, "at least one chunk worker");
    return new ChunkWorkers(count, true);
  }

  /**
   * A pool of `count` threads started by its first job, not before: a thread's start costs
   * ~50–75 ms of a core, which a restore's critical path should not share (ADR 0021).
   */
  static onFirstJob(count: number): ChunkWorkers {
    assert(Number.isInteger(count) && count >= 1, "at least one chunk worker");
    return new ChunkWorkers(count, false);
  }

  /**
   * Runs a job on the least busy thread; its buffer (and a decodeStored job's stored bytes) is
   * unusable until the reply returns it.
   */
  run(input: JobInput): Promise<ChunkReply> {
    assert(!this.#closed, "the chunk workers are open");
    if (this.#failure !== null) return Promise.reject(this.#failure);
    if (this.#threads.length === 0) this.#spawnAll();
    const id = this.#nextId++;
    let thread = this.#threads[0];
    for (const t of this.#threads) if (t.pending.size < (thread?.pending.size ?? 0)) thread = t;
    assert(thread !== undefined, "the pool has threads");
    const chosen = thread;
    return new Promise((resolve, reject) => {
      if (chosen.pending.size === 0) chosen.worker.ref();
      chosen.pending.set(id, { resolve, reject });
      const moved = input.kind === "decodeStored" ? [input.buffer, input.stored] : [input.buffer];
      chosen.worker.postMessage({ ...input, id }, moved);
    });
  }

  /** Ends every thread; jobs still pending reject. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#fail(new Error("The chunk workers were closed while a job ran"));
    await Promise.all(this.#threads.map((t) => t.worker.terminate()));
  }

  #spawnAll(): void {
    for (let i = 0; i < this.size; i++) this.#threads.push(this.#spawn());
  }

  #spawn(): Thread {
    const worker = new Worker(WORKER_URL, { stdout: false, stderr: false });
    const thread: Thread = { worker, pending: new Map() };
    worker.unref(); // referenced only while a job is pending (run)
    worker.on("message", (reply: ChunkReply) => {
      const p = thread.pending.get(reply.id);
      if (p === undefined && this.#failure !== null) return; // its job was rejected already
      assert(p !== undefined, "a worker answers each job once");
      thread.pending.delete(reply.id);
      if (thread.pending.size === 0) worker.unref();
      p.resolve(reply);
    });
    worker.on("error", (error) => this.#fail(new Error(`A chunk worker failed: ${error.message}`)));
    worker.on("exit", (code) => {
      if (!this.#closed) this.#fail(new Error(`A chunk worker exited (code ${code})`));
    });
    return thread;
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const t of this.#threads) {
      for (const p of t.pending.values()) p.reject(this.#failure);
      t.pending.clear();
      t.worker.unref();
    }
  }
}
