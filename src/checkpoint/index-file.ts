/**
 * index.bin (docs/format.md §3): a 64-byte header, then one compressed body holding the chunk
 * table and the page map. decodeIndex is called only after the file's SHA-256 matched the
 * manifest, and still checks every field: a hash proves the bytes are the ones written, not
 * that the writer was right.
 */
import os from "node:os";
import { DecodeError, InvalidCheckpointError } from "../errors.ts";
import { CHECKPOINT_CHUNKS_MAX, INDEX_BYTES_MAX } from "../limits.ts";
import { ChunkTable, checkChunkTable } from "./chunk-table.ts";
import { type ChunkCodec, CodecId, codecById } from "./codec.ts";
import {
  CHUNK_ENTRY_BYTES,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  INDEX_HEADER_BYTES,
  Magic,
  PAGE_ENTRY_BYTES,
} from "./format.ts";
import { LeReader, LeWriter } from "./le-bytes.ts";
import { type BlockShape, checkPageMap, PageMap } from "./page-map.ts";

const littleEndianHost = os.endianness() === "LE";

/** Encodes the index; the body is compressed with `codec` when that makes it smaller. */
export function encodeIndex(chunks: ChunkTable, pageMap: PageMap, codec: ChunkCodec): Uint8Array {
  const map = new Uint8Array(
    pageMap.entries.buffer,
    pageMap.entries.byteOffset,
    pageMap.entries.byteLength,
  );
  const raw = Buffer.concat([chunks.bytes, littleEndianHost ? map : Buffer.from(map).swap32()]);
  const packed = codec.compress(raw);
  const [bodyCodec, body] =
    packed.byteLength < raw.byteLength ? [codec.id, packed] : [CodecId.none, raw];
  const h = new LeWriter(INDEX_HEADER_BYTES)
    .magic(Magic.index)
    .u16(FORMAT_MAJOR)
    .u16(FORMAT_MINOR)
    .u32(0) // flags
    .u8(bodyCodec)
    .reserved(3)
    .u32(chunks.count)
    .u32(pageMap.blocks.length)
    .u64(pageMap.entries.length)
    .u64(body.byteLength)
    .u64(raw.byteLength)
    .reserved(16);
  return Buffer.concat([h.bytes, body]);
}

export interface IndexContext {
  readonly checkpoint: string;
  readonly file: string;
  readonly blocks: readonly BlockShape[];
  readonly chunkCount: number;
  readonly packBytes: number;
}

export interface DecodedIndex {
  readonly chunks: ChunkTable;
  readonly pageMap: PageMap;
}

export function decodeIndex(bytes: Uint8Array, ctx: IndexContext): DecodedIndex {
  const fail = (why: string, cause?: unknown) =>
    new InvalidCheckpointError(ctx.checkpoint, `index file "${ctx.file}" ${why}`, { cause });
  try {
    const body = readBody(bytes, ctx, fail);
    const chunks = new ChunkTable(body.subarray(0, ctx.chunkCount * CHUNK_ENTRY_BYTES));
    const chunkProblem = checkChunkTable(chunks, ctx.packBytes);
    if (chunkProblem !== null) throw fail(`has a bad chunk table: ${chunkProblem}`);
    const pageMap = new PageMap(ctx.blocks, entriesOf(body.subarray(chunks.bytes.byteLength)));
    const mapProblem = checkPageMap(pageMap, chunks);
    if (mapProblem !== null) throw new InvalidCheckpointError(ctx.checkpoint, mapProblem);
    return { chunks, pageMap };
  } catch (error) {
    if (error instanceof DecodeError) throw fail(`is malformed: ${error.message}`, error);
    throw error;
  }
}

function readBody(
  bytes: Uint8Array,
  ctx: IndexContext,
  fail: (why: string, cause?: unknown) => Error,
): Uint8Array {
  const r = new LeReader(bytes);
  if (bytes.byteLength < INDEX_HEADER_BYTES) throw fail("is shorter than its header");
  if (r.magic() !== Magic.index) throw fail("is not a checkpoint index (bad magic)");
  const major = r.u16();
  const minor = r.u16();
  if (major !== FORMAT_MAJOR || minor > FORMAT_MINOR)
    throw fail(`has unsupported version ${major}.${minor}`);
  const flags = r.u32();
  if (flags !== 0) throw fail(`has unknown flags 0x${flags.toString(16)}`);
  const codec = codecById(r.u8());
  r.reserved(3);
  const chunkCount = r.u32();
  const blockCount = r.u32();
  const pageCount = r.u64("page count");
  const storedBytes = r.u64("body length");
  const rawBytes = r.u64("raw body length");
  r.reserved(16);
  const pages = ctx.blocks.reduce((n, b) => n + b.pageCount, 0);
  if (codec === null) throw fail("uses an unknown codec");
  if (chunkCount !== ctx.chunkCount || chunkCount > CHECKPOINT_CHUNKS_MAX) {
    throw fail(`lists ${chunkCount} chunks, the manifest ${ctx.chunkCount}`);
  }
  if (blockCount !== ctx.blocks.length || pageCount !== pages) {
    throw fail(
      `describes ${blockCount} blocks of ${pageCount} pages, the manifest ${ctx.blocks.length} of ${pages}`,
    );
  }
  const expectedRaw = chunkCount * CHUNK_ENTRY_BYTES + pageCount * PAGE_ENTRY_BYTES;
  if (rawBytes !== expectedRaw || rawBytes > INDEX_BYTES_MAX)
    throw fail(`has a bad body length ${rawBytes}`);
  if (storedBytes !== r.remaining)
    throw fail(`body has ${r.remaining} bytes, its header says ${storedBytes}`);
  return codec.decompress(r.slice(storedBytes), rawBytes);
}

/** Copies little-endian u32 entries into an aligned, host-order array. */
function entriesOf(bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array(bytes.byteLength / PAGE_ENTRY_BYTES);
  const view = Buffer.from(out.buffer);
  view.set(bytes);
  if (!littleEndianHost) view.swap32();
  return out;
}
