/**
 * Chunk codecs behind one small interface, so the choice (ADR 0002) can change without touching
 * the writer or reader. A codec id is stored per chunk (docs/format.md §4.1); ids are never reused.
 *
 * Invariant: decompress(compress(x), x.length) equals x; decompress never produces more than
 * `rawBytes` (the output bound is checked inside zstd, before memory is spent).
 */
import zlib from "node:zlib";
import { DecodeError } from "../../errors.ts";
import { zstdDecompressFresh, zstdDecompressInto } from "./zstd-into.ts";

/** Codec ids as stored in the chunk table and the index header. */
export const CodecId = { none: 0, zstd: 1 } as const;
export type CodecId = (typeof CodecId)[keyof typeof CodecId];

export interface ChunkCodec {
  readonly id: CodecId;
  readonly name: string;
  compress(raw: Uint8Array): Uint8Array;
  /** Exactly `rawBytes` bytes, or DecodeError. */
  decompress(stored: Uint8Array, rawBytes: number): Uint8Array;
  /**
   * Exactly `out.byteLength` bytes, or DecodeError: `out` filled (zstd, ADR 0028: a reused
   * buffer costs no page faults), or `stored` itself when it is stored raw (no copy).
   */
  decompressInto(stored: Uint8Array, out: Uint8Array): Uint8Array;
}

/** zstd levels accepted: 1..19 (node:zlib cannot express -1: it means "unset" there). */
export const ZSTD_LEVEL_MIN = 1;
export const ZSTD_LEVEL_MAX = 19;
/** The measured choice (ADR 0002): level 1 compresses ~50% faster than 3 for ~7% less ratio. */
export const ZSTD_LEVEL_DEFAULT = 1;

const none: ChunkCodec = {
  id: CodecId.none,
  name: "none",
  compress: (raw) => raw,
  decompress(stored, rawBytes) {
    if (stored.byteLength !== rawBytes) {
      throw new DecodeError(`Raw chunk has ${stored.byteLength} bytes, expected ${rawBytes}`, 0);
    }
    return stored;
  },
  decompressInto: (stored, out) => none.decompress(stored, out.byteLength),
};

/**
 * Output room past the input for one zstd call: ZSTD_compressBound(n) is n + n/256 + a little
 * (raw blocks of incompressible input, frame and block headers).
 */
const zstdBoundBytes = (n: number): number => n + (n >>> 8) + 1024;

/**
 * zstd through node:zlib (zstd 1.5.x built into Node 24): no dependency.
 *
 * Both directions pass `chunkSize` big enough for the whole output: node:zlib's sync calls
 * otherwise produce 16 KiB pieces and concatenate them, which doubled the cost of compressing
 * an incompressible 256 KiB chunk and cost decompression a third (ADR 0002, "Throughput").
 * Decompression is zstd-into.ts's: into the caller's buffer, or a fresh one.
 */
export function zstdCodec(level: number): ChunkCodec {
  const params = {
    [zlib.constants.ZSTD_c_compressionLevel]: level,
    [zlib.constants.ZSTD_c_checksumFlag]: 0, // chunks carry their own SHA-256
  };
  return {
    id: CodecId.zstd,
    name: "zstd",
    compress: (raw) =>
      zlib.zstdCompressSync(raw, { params, chunkSize: zstdBoundBytes(raw.byteLength) }),
    decompress: zstdDecompressFresh,
    decompressInto: zstdDecompressInto,
  };
}

const zstdDefault = zstdCodec(ZSTD_LEVEL_DEFAULT);

/** The codec that decodes `id`, or null for an id this version does not know. */
export function codecById(id: number): ChunkCodec | null {
  switch (id) {
    case CodecId.none:
      return none;
    case CodecId.zstd:
      return zstdDefault;
    default:
      return null;
  }
}

/** The codec that stores chunks raw (used when compression does not help). */
export const noneCodec = none;
