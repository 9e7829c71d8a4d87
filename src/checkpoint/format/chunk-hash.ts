/**
 * A chunk's content hash (docs/format.md §3.1, ADR 0001): SHA-256 over the SHA-256 digests of
 * its pages in slot order. The writer already hashes every page for dedup, so the chunk hash
 * costs it one 2 KiB hash instead of a second pass over 256 KiB; a reader recomputes it from the
 * decompressed pages.
 */
import crypto from "node:crypto";
import { CHUNK_PAGES_MAX, PAGE_SIZE_BYTES } from "../../limits.ts";

export const PAGE_DIGEST_BYTES = 32;

/**
 * Writes SHA-256(page) into `out` at `offset`. A latin1 ("binary") string plus a write into a
 * reused buffer costs ~0.7 µs less a page than a fresh 32-byte Buffer per digest (ADR 0001).
 */
export function writePageDigest(page: Uint8Array, out: Buffer, offset: number): void {
  out.write(crypto.hash("sha256", page, "binary"), offset, PAGE_DIGEST_BYTES, "latin1");
}

/**
 * Whether page `slot` of a chunk, `page`, has the SHA-256 that `digests` (the chunk's page
 * digests, slot order) holds for it. `scratch` is a reused 32-byte buffer.
 */
export function pageMatchesDigest(
  page: Uint8Array,
  digests: Uint8Array,
  slot: number,
  scratch: Buffer,
): boolean {
  const at = slot * PAGE_DIGEST_BYTES;
  if (at + PAGE_DIGEST_BYTES > digests.byteLength) return false;
  writePageDigest(page, scratch, 0);
  return scratch.compare(digests, at, at + PAGE_DIGEST_BYTES) === 0;
}

/** The hash of a chunk whose page digests are `digests` (pageCount × 32 bytes). */
export function chunkHashOfDigests(digests: Uint8Array): Buffer {
  return crypto.hash("sha256", digests, "buffer");
}

/** The SHA-256 of each page of `raw` (pageCount × 4096 bytes), back to back. */
export function pageDigestsOf(raw: Uint8Array): Buffer {
  const pageCount = raw.byteLength / PAGE_SIZE_BYTES;
  const digests = Buffer.allocUnsafe(pageCount * PAGE_DIGEST_BYTES);
  for (let s = 0; s < pageCount && s < CHUNK_PAGES_MAX; s++) {
    const page = raw.subarray(s * PAGE_SIZE_BYTES, (s + 1) * PAGE_SIZE_BYTES);
    writePageDigest(page, digests, s * PAGE_DIGEST_BYTES);
  }
  return digests;
}

/** The hash of a chunk from its raw pages (pageCount × 4096 bytes). */
export function chunkHashOfPages(raw: Uint8Array): Buffer {
  return chunkHashOfDigests(pageDigestsOf(raw));
}
