/**
 * ChunkPacker: turns non-zero pages into stored slots. Each page is hashed (SHA-256, ADR 0001)
 * and looked up in the dedup index; a new content is copied into the open chunk with its digest;
 * a full chunk gets its hash from those digests, is compressed (ADR 0002; stored raw if that is
 * not smaller) and appended to the pack.
 *
 * Invariants: one open chunk of CHUNK_PAGES_MAX pages is the only page data held here; a slot's
 * page-map entry is final when `add` returns it (chunk index = chunks sealed so far).
 */
import assert from "node:assert/strict";
import { UsageError } from "../../errors.ts";
import { CHECKPOINT_CHUNKS_MAX, CHUNK_PAGES_MAX, PAGE_SIZE_BYTES } from "../../limits.ts";
import { chunkHashOfDigests, PAGE_DIGEST_BYTES, writePageDigest } from "../format/chunk-hash.ts";
import { ChunkTableBuilder } from "../format/chunk-table.ts";
import { type ChunkCodec, noneCodec } from "../format/codec.ts";
import { DedupIndex } from "../format/dedup-index.ts";
import { storedEntry } from "../format/format.ts";
import type { PackDigests } from "../store/digest-cache.ts";
import type { PackWriter } from "./pack-writer.ts";

export class ChunkPacker {
  readonly table = new ChunkTableBuilder();
  readonly #dedup = new DedupIndex();
  readonly #open = Buffer.alloc(CHUNK_PAGES_MAX * PAGE_SIZE_BYTES);
  readonly #digests = Buffer.alloc(CHUNK_PAGES_MAX * PAGE_DIGEST_BYTES);
  readonly #digest = Buffer.alloc(PAGE_DIGEST_BYTES);
  readonly #pack: PackWriter;
  readonly #codec: ChunkCodec;
  #openPages = 0;
  /** Pages whose content was already stored. */
  duplicates = 0;
  /** Bytes of compressed (or raw-stored) chunks appended. */
  storedBytes = 0;
  /** Each sealed chunk's page digests by pack offset, for the digest cache (32 B a page). */
  readonly chunkDigests: PackDigests = new Map();

  constructor(pack: PackWriter, codec: ChunkCodec) {
    this.#pack = pack;
    this.#codec = codec;
  }

  /** Distinct page contents stored (slots). */
  get unique(): number {
    return this.#dedup.size;
  }

  get full(): boolean {
    return this.#openPages === CHUNK_PAGES_MAX;
  }

  /** The page-map entry for this page's content, storing it if it is new. */
  add(page: Uint8Array): number {
    const digest = this.digest(page);
    const existing = this.existing(digest);
    return existing >= 0 ? existing : this.store(page, digest);
  }

  /** SHA-256 of `page`, in a buffer reused by the next call (copy it to keep it). */
  digest(page: Uint8Array): Buffer {
    writePageDigest(page, this.#digest, 0);
    return this.#digest;
  }

  /** The entry of an already stored page with this digest (a duplicate), or -1. */
  existing(digest: Uint8Array): number {
    const existing = this.#dedup.get(digest);
    if (existing >= 0) this.duplicates += 1;
    return existing;
  }

  /** Stores a page whose content is not stored yet; returns its page-map entry. */
  store(page: Uint8Array, digest: Uint8Array): number {
    if (this.#dedup.get(digest) >= 0) assert.fail("store is only called for new contents");
    const chunk = this.table.count;
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

  /** Closes the open chunk (if it has pages) into the pack; a Promise means "wait" (backpressure). */
  seal(): Promise<void> | undefined {
    if (this.#openPages === 0) return undefined;
    const raw = this.#open.subarray(0, this.#openPages * PAGE_SIZE_BYTES);
    const digests = this.#digests.subarray(0, this.#openPages * PAGE_DIGEST_BYTES);
    const sha256 = chunkHashOfDigests(digests);
    const packed = this.#codec.compress(raw);
    const [codec, stored] =
      packed.byteLength < raw.byteLength ? [this.#codec, packed] : [noneCodec, raw];
    const { offset, wait } = this.#pack.append(stored);
    this.chunkDigests.set(offset, Buffer.from(digests));
    this.table.append({
      offset,
      storedBytes: stored.byteLength,
      pageCount: this.#openPages,
      codec: codec.id,
      sha256,
    });
    this.storedBytes += stored.byteLength;
    this.#openPages = 0;
    return wait ?? undefined;
  }
}
