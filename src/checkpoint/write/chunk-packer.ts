/**
 * ChunkPacker: turns new page contents into stored slots. The caller hashes each page (SHA-256,
 * ADR 0001) and asks `existing`; a new content is copied into the open chunk with its digest;
 * a full chunk gets its hash from those digests and goes to a chunk worker to be compressed
 * (ADR 0002; stored raw if that is not smaller), then is appended to the pack in chunk order.
 *
 * Invariants: a slot's page-map entry is final when `store` returns it (chunk index = chunks
 * sealed so far), although the chunk reaches the pack and the table later; at most
 * WRITE_CHUNKS_IN_FLIGHT_MAX chunks are being compressed, each in a pooled buffer, so memory
 * stays bounded; a failed compression or pack write is kept and rethrown by every later call,
 * and no Promise made here ever rejects unobserved.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../errors.ts";
import {
  CHECKPOINT_CHUNKS_MAX,
  CHUNK_PAGES_MAX,
  PAGE_SIZE_BYTES,
  WRITE_CHUNKS_IN_FLIGHT_MAX,
} from "../../limits.ts";
import { chunkHashOfDigests, PAGE_DIGEST_BYTES } from "../format/chunk-hash.ts";
import { ChunkTableBuilder } from "../format/chunk-table.ts";
import { codecById } from "../format/codec.ts";
import { DedupIndex } from "../format/dedup-index.ts";
import { storedEntry } from "../format/format.ts";
import type { ChunkWorkers } from "../read/chunk-workers.ts";
import type { PackDigests } from "../store/digest-cache.ts";
import { InOrder } from "./in-order.ts";
import type { PackWriter } from "./pack-writer.ts";

const CHUNK_BYTES = CHUNK_PAGES_MAX * PAGE_SIZE_BYTES;

export class ChunkPacker {
  readonly table = new ChunkTableBuilder();
  readonly #dedup = new DedupIndex();
  /** Free chunk buffers; a sealed chunk's buffer comes back once it is in the pack. */
  readonly #free: ArrayBuffer[] = [];
  #open: Uint8Array = new Uint8Array(new ArrayBuffer(CHUNK_BYTES));
  readonly #digests = Buffer.alloc(CHUNK_PAGES_MAX * PAGE_DIGEST_BYTES);
  readonly #pack: PackWriter;
  readonly #workers: ChunkWorkers;
  readonly #level: number;
  #openPages = 0;
  /** Chunks handed to compression: the chunk index of the open chunk. */
  #sealed = 0;
  /** Each sealed chunk's compression, appended in chunk order. */
  readonly #appends = new InOrder();
  /** Pages whose content was already stored. */
  duplicates = 0;
  /** Bytes of compressed (or raw-stored) chunks appended. */
  storedBytes = 0;
  /** Each sealed chunk's page digests by pack offset, for the digest cache (32 B a page). */
  readonly chunkDigests: PackDigests = new Map();

  constructor(pack: PackWriter, workers: ChunkWorkers, level: number) {
    this.#pack = pack;
    this.#workers = workers;
    this.#level = level;
  }

  /** Distinct page contents stored (slots). */
  get unique(): number {
    return this.#dedup.size;
  }

  get full(): boolean {
    return this.#openPages === CHUNK_PAGES_MAX;
  }

  /** The entry of an already stored page with this digest (a duplicate), or -1. */
  existing(digest: Uint8Array): number {
    const existing = this.#dedup.get(digest);
    if (existing >= 0) this.duplicates += 1;
    return existing;
  }

  /** Stores a page whose content is not stored yet; returns its page-map entry. */
  store(page: Uint8Array, digest: Uint8Array): number {
    this.#rethrow();
    if (this.#dedup.get(digest) >= 0) assert.fail("store is only called for new contents");
    assert(this.#openPages < CHUNK_PAGES_MAX, "a full chunk is sealed before the next store");
    const chunk = this.#sealed;
    if (chunk >= CHECKPOINT_CHUNKS_MAX) {
      throw new UsageError(
        `Cannot store more pages: the checkpoint reached ${CHECKPOINT_CHUNKS_MAX} chunks, the format's limit`,
      );
    }
    const entry = storedEntry(chunk, this.#openPages);
    this.#dedup.addLast(entry);
    this.#open.set(page, this.#openPages * PAGE_SIZE_BYTES);
    this.#digests.set(digest, this.#openPages * PAGE_DIGEST_BYTES);
    this.#openPages += 1;
    return entry;
  }

  /**
   * Hands the open chunk (if it has pages) to a worker to compress; it reaches the pack in
   * order. A Promise means "wait": too many chunks are in flight.
   */
  seal(): Promise<void> | undefined {
    this.#rethrow();
    if (this.#openPages === 0) return undefined;
    const pageCount = this.#openPages;
    const digests = Buffer.from(this.#digests.subarray(0, pageCount * PAGE_DIGEST_BYTES));
    const sha256 = chunkHashOfDigests(digests);
    const buffer = this.#open.buffer as ArrayBuffer;
    const compressed = this.#workers.run({
      kind: "compress",
      buffer,
      rawBytes: pageCount * PAGE_SIZE_BYTES,
      level: this.#level,
    });
    this.#open = new Uint8Array(this.#free.pop() ?? new ArrayBuffer(CHUNK_BYTES));
    this.#openPages = 0;
    this.#sealed += 1;
    this.#appends.add(compressed, (reply) => {
      if (!reply.ok || reply.stored === undefined)
        throw new Error(`compressing a chunk failed: ${reply.ok ? "no size" : reply.error}`);
      const codec = codecById(reply.stored.codec);
      assert(codec !== null, "a chunk worker answers with a known codec");
      const stored = new Uint8Array(reply.buffer, 0, reply.stored.bytes);
      const { offset, wait } = this.#pack.append(stored);
      this.#free.push(reply.buffer); // append copied it
      this.chunkDigests.set(offset, digests);
      this.table.append({
        offset,
        storedBytes: stored.byteLength,
        pageCount,
        codec: codec.id,
        sha256,
      });
      this.storedBytes += stored.byteLength;
      return wait ?? undefined;
    });
    if (this.#appends.pending <= WRITE_CHUNKS_IN_FLIGHT_MAX) return undefined;
    return this.#appends.oldest().then(() => this.#rethrow());
  }

  /** Seals the open chunk and waits until every chunk is in the pack (or throws why not). */
  async finish(): Promise<void> {
    await this.seal();
    await this.#appends.settled();
    this.#rethrow();
  }

  /** Waits for work in flight without throwing: for abort paths. */
  settle(): Promise<void> {
    return this.#appends.settled();
  }

  #rethrow(): void {
    if (this.#appends.failed) throw this.#appends.failure;
  }
}
