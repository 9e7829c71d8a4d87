/**
 * Decoding one pack chunk (docs/format.md §3.1, §4.1): its stored bytes decompressed with its
 * codec, bounded by its page count, then its content hash checked. The one implementation the
 * reader (main thread) and the chunk workers (chunk-worker.ts) share, so both fail the same way.
 *
 * Invariant: `ok` only when the raw bytes are exactly pageCount × 4096 and their hash list
 * equals the chunk's sha256; a failure never hands out bytes.
 */
import assert from "node:assert/strict";
import { DecodeError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { chunkHashOfDigests, pageDigestsOf } from "./chunk-hash.ts";
import { codecById } from "./codec.ts";

/** What decoding needs of a chunk-table entry. */
export interface ChunkCodecEntry {
  readonly codec: number;
  readonly pageCount: number;
  readonly sha256: Uint8Array;
}

/** Why a chunk is bad, as the reader words it after the chunk's name. */
export type ChunkProblem =
  | { readonly kind: "decompress"; readonly detail: string }
  | { readonly kind: "hash" };

export type DecodedChunk =
  | { readonly ok: true; readonly raw: Uint8Array; readonly digests: Buffer }
  | { readonly ok: false; readonly problem: ChunkProblem };

export type DecompressedChunk =
  | { readonly ok: true; readonly raw: Uint8Array }
  | { readonly ok: false; readonly problem: ChunkProblem };

/**
 * Only decompresses (codec none: takes as is) a pack chunk's stored bytes: its pages are NOT
 * checked yet. For a caller that checks them against trusted page digests (ADR 0019). With
 * `into` (at least the chunk's size), a compressed chunk's raw bytes are written there and
 * are a view of it (ADR 0028: a reused buffer costs no page faults); a raw chunk's are a view
 * of `stored` either way.
 */
export function decompressPackChunk(
  entry: ChunkCodecEntry,
  stored: Uint8Array,
  into?: Uint8Array,
): DecompressedChunk {
  const codec = codecById(entry.codec);
  assert(codec !== null, "codec checked when the index was opened");
  const rawBytes = entry.pageCount * PAGE_SIZE_BYTES;
  assert(into === undefined || into.byteLength >= rawBytes, "room for the chunk's pages");
  try {
    const raw =
      into === undefined
        ? codec.decompress(stored, rawBytes)
        : codec.decompressInto(stored, into.subarray(0, rawBytes));
    return { ok: true, raw };
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    return { ok: false, problem: { kind: "decompress", detail: error.message } };
  }
}

/** Decompresses (codec none: takes as is; `into` as above) and verifies a pack chunk. */
export function decodePackChunk(
  entry: ChunkCodecEntry,
  stored: Uint8Array,
  into?: Uint8Array,
): DecodedChunk {
  const decompressed = decompressPackChunk(entry, stored, into);
  if (!decompressed.ok) return decompressed;
  const { raw } = decompressed;
  const digests = pageDigestsOf(raw);
  if (!chunkHashOfDigests(digests).equals(entry.sha256)) {
    return { ok: false, problem: { kind: "hash" } };
  }
  return { ok: true, raw, digests };
}

/** The reader's reason for a bad chunk named `where` ("chunk 3", or with its shared pack). */
export function chunkProblemReason(where: string, problem: ChunkProblem): string {
  return problem.kind === "hash"
    ? `${where} fails its hash check (its pages are corrupt)`
    : `${where} does not decompress: ${problem.detail}`;
}
