/**
 * A bounded LRU of decompressed, verified chunks for the page server. One request decompresses
 * a whole chunk (a locality block, Halite); the cache keeps it for the chunk's other pages
 * (requests, locality pushes, background fill) so it is read and decompressed once.
 *
 * Invariants: at most `capacity` chunks are held (loads in progress included); an entry holds
 * only pages that passed the chunk's hash check (the loader verifies them; EarlyPages may see
 * single pages checked alone before, never an entry), and a failed load
 * is dropped and its error given to whoever asked, never swallowed.
 */
import assert from "node:assert/strict";
import { PAGE_SIZE_BYTES } from "../../limits.ts";

/**
 * How soon a chunk is needed, which orders both stages of a load (ChunkLoader): "request", a
 * vCPU waits on one of its pages; "prelude", the guest waits to start; "neighbours", one of its
 * pages was just answered alone (ADR 0020) and the others are the likeliest next; "fill",
 * nobody waits (background fill, locality, read-ahead). Higher goes first, oldest first within
 * one.
 */
export type Urgency = "fill" | "neighbours" | "prelude" | "request";

/**
 * A page request's early answer (ADR 0019): called once, when the chunk is read and its page
 * digests are trusted, before the rest of the chunk is checked; `page(slot)` gives that slot's
 * page if it matches its digest (else null). Its bytes must be copied in this call.
 */
export type EarlyPages = (page: (slot: number) => Uint8Array | null) => void;

/** What the cache needs of a checkpoint reader. */
export interface ChunkLoader {
  readStoredChunk(chunk: number): Promise<Uint8Array>;
  /** Decompresses and verifies; throws InvalidCheckpointError naming the chunk. */
  decodeChunk(chunk: number, stored: Uint8Array): Uint8Array[];
  /**
   * Optional: reads, decompresses and verifies `chunk` off the main thread (a chunk worker),
   * or null when this chunk is read here (readStoredChunk, decodeChunk). Rejects like
   * decodeChunk throws.
   */
  loadOffThread?(
    chunk: number,
    urgency: Urgency,
    early?: EarlyPages,
  ): Promise<{ pages: Uint8Array[]; storedBytes: number }> | null;
  /**
   * Optional: `chunk` is now needed as soon as `urgency` says; a load not done goes sooner,
   * and one not decoding yet also calls `early`, if given and it can.
   */
  promote?(chunk: number, urgency: Urgency, early?: EarlyPages): void;
  /**
   * Optional: an evicted chunk's pages, given back in a later macrotask (every user of a
   * chunk's pages copies them in the tick it got them: a page record is a memcpy), so their
   * buffer can be reused for another load.
   */
  recycle?(pages: readonly Uint8Array[]): void;
}

export interface ChunkCacheStats {
  readonly hits: number;
  readonly misses: number;
  /** Stored (compressed) bytes read from the pack. */
  readonly bytesRead: number;
  /** Bytes of pages decompressed and verified. */
  readonly bytesDecompressed: number;
}

export class ChunkCache {
  readonly #loader: ChunkLoader;
  readonly #capacity: number;
  /** Map order is recency order: the first key is the least recently used. */
  readonly #entries = new Map<number, Promise<Uint8Array[]>>();
  /** The entries whose load has finished: served without waiting (peek). */
  readonly #ready = new Map<number, Uint8Array[]>();
  #hits = 0;
  #misses = 0;
  #bytesRead = 0;
  #bytesDecompressed = 0;

  constructor(loader: ChunkLoader, capacity: number) {
    assert(Number.isSafeInteger(capacity) && capacity >= 1, "the cache holds at least one chunk");
    this.#loader = loader;
    this.#capacity = capacity;
  }

  /** Chunks held now (never more than the capacity). */
  get size(): number {
    return this.#entries.size;
  }

  get stats(): ChunkCacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      bytesRead: this.#bytesRead,
      bytesDecompressed: this.#bytesDecompressed,
    };
  }

  has(chunk: number): boolean {
    return this.#entries.has(chunk);
  }

  /** Whether `chunk` is held and loaded (peek would give it), without touching its recency. */
  isReady(chunk: number): boolean {
    return this.#ready.has(chunk);
  }

  /**
   * The verified pages of `chunk` if it is held and loaded, else undefined; no load starts.
   * A hit refreshes its recency, as get() does: a page server answers a request from it in
   * the same tick the request was read.
   */
  peek(chunk: number): Uint8Array[] | undefined {
    const pages = this.#ready.get(chunk);
    if (pages === undefined) return undefined;
    const held = this.#entries.get(chunk);
    assert(held !== undefined, "a ready chunk is held");
    this.#hits += 1;
    this.#entries.delete(chunk);
    this.#entries.set(chunk, held);
    return pages;
  }

  /**
   * The verified pages of `chunk`, slot by slot; rejects with the loader's error. `urgency`:
   * who waits for it, which orders its load among the others (ChunkLoader.promote). `early`:
   * the loader may give pages checked alone before the whole chunk is (EarlyPages).
   */
  get(chunk: number, urgency: Urgency = "fill", early?: EarlyPages): Promise<Uint8Array[]> {
    const held = this.#entries.get(chunk);
    if (held !== undefined) {
      if (urgency !== "fill" && !this.#ready.has(chunk))
        this.#loader.promote?.(chunk, urgency, early);
      this.#hits += 1;
      this.#entries.delete(chunk);
      this.#entries.set(chunk, held);
      return held;
    }
    this.#misses += 1;
    return this.#load(chunk, urgency, early);
  }

  /** Starts loading `chunk` if it is not held (read-ahead); counted as a miss now. */
  prefetch(chunk: number, urgency: Urgency = "fill"): void {
    if (this.#entries.has(chunk)) return;
    this.#misses += 1;
    // The error is kept for get(), which rethrows it.
    this.#load(chunk, urgency).catch(() => undefined);
  }

  #load(chunk: number, urgency: Urgency, early?: EarlyPages): Promise<Uint8Array[]> {
    const loading = this.#read(chunk, urgency, early);
    this.#entries.set(chunk, loading);
    while (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next();
      assert(oldest.done !== true, "a cache over capacity is not empty");
      this.#entries.delete(oldest.value);
      const evicted = this.#ready.get(oldest.value);
      this.#ready.delete(oldest.value);
      const recycle = this.#loader.recycle;
      if (evicted !== undefined && recycle !== undefined) {
        setImmediate(() => recycle.call(this.#loader, evicted));
      }
    }
    loading.then(
      (pages) => {
        if (this.#entries.get(chunk) === loading) this.#ready.set(chunk, pages);
      },
      () => {
        if (this.#entries.get(chunk) === loading) this.#entries.delete(chunk);
      },
    );
    return loading;
  }

  async #read(chunk: number, urgency: Urgency, early?: EarlyPages): Promise<Uint8Array[]> {
    const offThread = this.#loader.loadOffThread?.(chunk, urgency, early) ?? null;
    if (offThread !== null) {
      const { pages, storedBytes } = await offThread;
      this.#bytesRead += storedBytes;
      this.#bytesDecompressed += pages.length * PAGE_SIZE_BYTES;
      return pages;
    }
    const stored = await this.#loader.readStoredChunk(chunk);
    this.#bytesRead += stored.byteLength;
    const pages = this.#loader.decodeChunk(chunk, stored);
    this.#bytesDecompressed += pages.length * PAGE_SIZE_BYTES;
    return pages;
  }
}
