/**
 * Trusted page digests for an open checkpoint's pack chunks, from the store's digest cache
 * (digest-cache.ts), so that one page of a chunk can be checked alone (ADR 0019): a page
 * request is answered once its own page matches its digest, before the other 63 are hashed.
 *
 * The cache is not part of the format and is never trusted as such: a chunk's cached digests
 * are used only when the SHA-256 over them equals the chunk's hash in the index, which the
 * manifest protects (docs/format.md §3.1). A page whose SHA-256 equals its digest in such a
 * list is bound to the checkpoint exactly as strongly as a page whose whole chunk was hashed:
 * the same two SHA-256 steps, the list's and the page's. Missing, stale or damaged entries give null,
 * and that chunk is checked whole, as before.
 */
import { decompressPackChunk } from "../format/chunk-decode.ts";
import { PAGE_DIGEST_BYTES, pageMatchesDigest } from "../format/chunk-hash.ts";
import { packIdOf } from "../format/manifest.ts";
import type { CheckpointReader } from "../read/reader.ts";
import { check, DigestCache, type PackDigests } from "./digest-cache.ts";

type DigestsReader = Pick<CheckpointReader, "manifest" | "chunks" | "chunkError">;

export class PageDigests {
  readonly #reader: DigestsReader;
  /** Cached digests by pack number (0: the checkpoint's own pack; k: `packs[k - 1]`). */
  readonly #packs: readonly PackDigests[];
  readonly #scratch = Buffer.alloc(PAGE_DIGEST_BYTES);
  /** forChunk's answers: each list is hashed against its chunk hash once. */
  readonly #checked = new Map<number, Buffer | null>();

  private constructor(reader: DigestsReader, packs: readonly PackDigests[]) {
    this.#reader = reader;
    this.#packs = packs;
  }

  /**
   * Reads the digest cache of every pack `reader` names from the store at `home`. Never
   * fails: a pack without a readable cache has no trusted digests.
   */
  static async load(reader: DigestsReader, home: string): Promise<PageDigests> {
    const cache = new DigestCache(home);
    const ids = [packIdOf(reader.manifest), ...reader.manifest.packs.map((p) => p.id)];
    const packs = await Promise.all(ids.map((id) => cache.load(id).catch(() => new Map())));
    return new PageDigests(reader, packs);
  }

  /** Chunks whose digests the cache holds, checked against their chunk hash or not. */
  get cachedChunks(): number {
    return this.#packs.reduce((n, p) => n + p.size, 0);
  }

  /**
   * The SHA-256 of each page of pack chunk `chunk` (slot order, 32 bytes each) when they hash
   * to its chunk hash, else null (also for a disk chunk, which is checked whole).
   */
  forChunk(chunk: number): Buffer | null {
    const { chunks } = this.#reader;
    if (chunk < 0 || chunk >= chunks.count || chunks.isDisk(chunk)) return null;
    const known = this.#checked.get(chunk);
    if (known !== undefined) return known;
    const cached = this.#packs[chunks.packOf(chunk)];
    const trusted = cached === undefined ? null : check(cached, chunks.entry(chunk));
    this.#checked.set(chunk, trusted);
    return trusted;
  }

  /**
   * Pack chunk `chunk`'s pages decompressed from its stored bytes and NOT checked: every page
   * used must match its digest from forChunk first. Throws the reader's error naming the chunk
   * when they do not decompress. With `into`, as decompressPackChunk says.
   */
  decompress(chunk: number, stored: Uint8Array, into?: Uint8Array): Uint8Array {
    const decompressed = decompressPackChunk(this.#reader.chunks.entry(chunk), stored, into);
    if (!decompressed.ok) throw this.#reader.chunkError(chunk, decompressed.problem);
    return decompressed.raw;
  }

  /** Whether `page`, slot `slot` of a chunk, matches its digest in `digests` (forChunk's). */
  matches(page: Uint8Array, digests: Buffer, slot: number): boolean {
    return pageMatchesDigest(page, digests, slot, this.#scratch);
  }

  /** The reader's error for a chunk one of whose pages does not match its digest. */
  corrupt(chunk: number): Error {
    return this.#reader.chunkError(chunk, { kind: "hash" });
  }
}
