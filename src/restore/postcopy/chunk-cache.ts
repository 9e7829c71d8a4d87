/**
 * A bounded LRU of decompressed, verified chunks for the page server. One request decompresses
 * a whole chunk (a locality block, Halite); the cache keeps it for the chunk's other pages
 * (requests, locality pushes, background fill) so it is read and decompressed once.
 *
 * Invariants: at most `capacity` chunks are held (loads in progress included); an entry holds
 * only pages that passed the chunk's hash check (the loader verifies them), and a failed load
 * is dropped and its error given to whoever asked, never swallowed.
 */
import assert from "node:assert/strict";
import { PAGE_SIZE_BYTES } from "../../limits.ts";

/** What the cache needs of a checkpoint reader. */
export interface ChunkLoader {
  readStoredChunk(chunk: number): Promise<Uint8Array>;
  /** Decompresses and verifies; throws InvalidCheckpointError naming the chunk. */
  decodeChunk(chunk: number, stored: Uint8Array): Uint8Array[];
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

  /** The verified pages of `chunk`, slot by slot; rejects with the loader's error. */
  get(chunk: number): Promise<Uint8Array[]> {
    const held = this.#entries.get(chunk);
    if (held !== undefined) {
      this.#hits += 1;
      this.#entries.delete(chunk);
      this.#entries.set(chunk, held);
      return held;
    }
    this.#misses += 1;
    return this.#load(chunk);
  }

  /** Starts loading `chunk` if it is not held (read-ahead); counted as a miss now. */
  prefetch(chunk: number): void {
    if (this.#entries.has(chunk)) return;
    this.#misses += 1;
    this.#load(chunk).catch(() => undefined); // the error is kept for get(), which rethrows it
  }

  #load(chunk: number): Promise<Uint8Array[]> {
    const loading = this.#read(chunk);
    this.#entries.set(chunk, loading);
    while (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next();
      assert(oldest.done !== true, "a cache over capacity is not empty");
      this.#entries.delete(oldest.value);
    }
    loading.catch(() => {
      if (this.#entries.get(chunk) === loading) this.#entries.delete(chunk);
    });
    return loading;
  }

  async #read(chunk: number): Promise<Uint8Array[]> {
    const stored = await this.#loader.readStoredChunk(chunk);
    this.#bytesRead += stored.byteLength;
    const pages = this.#loader.decodeChunk(chunk, stored);
    this.#bytesDecompressed += pages.length * PAGE_SIZE_BYTES;
    return pages;
  }
}
