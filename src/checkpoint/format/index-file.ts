/**
 * index.bin (docs/format.md §3): a 64-byte header, then one compressed body holding the chunk
 * table, the page map and (1.1) the disk-reference table. decodeIndex is called only after
 * the file's SHA-256 matched the manifest, and still checks every field: a hash proves the
 * bytes are the ones written, not that the writer was right.
 */
import os from "node:os";
import { ByteReader, ByteWriter } from "../../bytes/index.ts";
import { DecodeError, InvalidCheckpointError } from "../../errors.ts";
import { CHECKPOINT_CHUNKS_MAX, CHECKPOINT_DISK_REFS_MAX } from "../../limits.ts";
import { ChunkTable, checkChunkTable } from "./chunk-table.ts";
import { type ChunkCodec, CodecId, codecById } from "./codec.ts";
import { checkDiskRefs, DiskRefTable } from "./disk-refs.ts";
import {
  BYTE_ORDER,
  CHUNK_ENTRY_BYTES,
  DISK_REF_ENTRY_BYTES,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  INDEX_BODY_BYTES_MAX,
  INDEX_HEADER_BYTES,
  Magic,
  Minor,
  PAGE_ENTRY_BYTES,
} from "./format.ts";
import { type BlockShape, checkPageMap, PageMap } from "./page-map.ts";

const littleEndianHost = os.endianness() === "LE";

const NO_DISK_REFS = new DiskRefTable(new Uint8Array(0));

/**
 * Encodes the index; the body is compressed with `codec` when that makes it smaller. Minor 1
 * only when there are disk references: otherwise the file is exactly a 1.0 index.
 */
export function encodeIndex(
  chunks: ChunkTable,
  pageMap: PageMap,
  codec: ChunkCodec,
  diskRefs: DiskRefTable = NO_DISK_REFS,
): Uint8Array {
  const map = new Uint8Array(
    pageMap.entries.buffer,
    pageMap.entries.byteOffset,
    pageMap.entries.byteLength,
  );
  const raw = Buffer.concat([
    chunks.bytes,
    littleEndianHost ? map : Buffer.from(map).swap32(),
    diskRefs.bytes,
  ]);
  const packed = codec.compress(raw);
  const [bodyCodec, body] =
    packed.byteLength < raw.byteLength ? [codec.id, packed] : [CodecId.none, raw];
  const h = new ByteWriter(INDEX_HEADER_BYTES, BYTE_ORDER)
    .latin1(Magic.index)
    .u16(FORMAT_MAJOR)
    .u16(diskRefs.count > 0 ? Minor.diskLayers : Minor.base)
    .u32(0) // flags
    .u8(bodyCodec)
    .reserved(3)
    .u32(chunks.count)
    .u32(pageMap.blocks.length)
    .u64(pageMap.entries.length)
    .u64(body.byteLength)
    .u64(raw.byteLength)
    .u32(diskRefs.count)
    .reserved(12)
    .takeExactly(INDEX_HEADER_BYTES);
  return Buffer.concat([h, body]);
}

export interface IndexContext {
  readonly checkpoint: string;
  readonly file: string;
  readonly blocks: readonly BlockShape[];
  readonly chunkCount: number;
  readonly packBytes: number;
  /** The manifest's minor version: the index's may not be newer. */
  readonly minor: number;
  /** The manifest's frozen layers (1.1), which disk references name. */
  readonly layers: readonly { readonly id: string; readonly virtualBytes: number }[];
  /** The sizes of the manifest's shared packs (1.2), which chunks may name. */
  readonly sharedPackBytes: readonly number[];
}

export interface DecodedIndex {
  readonly chunks: ChunkTable;
  readonly pageMap: PageMap;
  readonly diskRefs: DiskRefTable;
}

export function decodeIndex(bytes: Uint8Array, ctx: IndexContext): DecodedIndex {
  const fail = (why: string, cause?: unknown) =>
    new InvalidCheckpointError(ctx.checkpoint, `index file "${ctx.file}" ${why}`, { cause });
  try {
    const { body, diskRefCount } = readBody(bytes, ctx, fail);
    const chunks = new ChunkTable(body.subarray(0, ctx.chunkCount * CHUNK_ENTRY_BYTES));
    const chunkProblem = checkChunkTable(chunks, ctx.packBytes, diskRefCount, ctx.sharedPackBytes);
    if (chunkProblem !== null) throw fail(`has a bad chunk table: ${chunkProblem}`);
    const mapBytes =
      body.byteLength - chunks.bytes.byteLength - diskRefCount * DISK_REF_ENTRY_BYTES;
    const mapEnd = chunks.bytes.byteLength + mapBytes;
    const pageMap = new PageMap(
      ctx.blocks,
      entriesOf(body.subarray(chunks.bytes.byteLength, mapEnd)),
    );
    const diskRefs = new DiskRefTable(body.subarray(mapEnd));
    const refProblem = checkDiskRefs(diskRefs, ctx.layers);
    if (refProblem !== null) throw fail(`has a bad disk-reference table: ${refProblem}`);
    const mapProblem = checkPageMap(pageMap, chunks);
    if (mapProblem !== null) throw new InvalidCheckpointError(ctx.checkpoint, mapProblem);
    return { chunks, pageMap, diskRefs };
  } catch (error) {
    if (error instanceof DecodeError) throw fail(`is malformed: ${error.message}`, error);
    throw error;
  }
}

function readBody(
  bytes: Uint8Array,
  ctx: IndexContext,
  fail: (why: string, cause?: unknown) => Error,
): { body: Uint8Array; diskRefCount: number } {
  const r = new ByteReader(bytes, 0, BYTE_ORDER);
  if (bytes.byteLength < INDEX_HEADER_BYTES) throw fail("is shorter than its header");
  if (r.latin1(4) !== Magic.index) throw fail("is not a checkpoint index (bad magic)");
  const major = r.u16();
  const minor = r.u16();
  if (major !== FORMAT_MAJOR || minor > FORMAT_MINOR || minor > ctx.minor)
    throw fail(`has unsupported version ${major}.${minor}`);
  const flags = r.u32();
  if (flags !== 0) throw fail(`has unknown flags 0x${flags.toString(16)}`);
  const codec = codecById(r.u8());
  r.reserved(3);
  const chunkCount = r.u32();
  const blockCount = r.u32();
  const pageCount = r.u64Number("page count");
  const storedBytes = r.u64Number("body length");
  const rawBytes = r.u64Number("raw body length");
  const diskRefCount = minor >= Minor.diskLayers ? r.u32() : 0;
  r.reserved(minor >= Minor.diskLayers ? 12 : 16);
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
  if (diskRefCount > CHECKPOINT_DISK_REFS_MAX) throw fail(`lists ${diskRefCount} disk references`);
  const expectedRaw =
    chunkCount * CHUNK_ENTRY_BYTES +
    pageCount * PAGE_ENTRY_BYTES +
    diskRefCount * DISK_REF_ENTRY_BYTES;
  if (rawBytes !== expectedRaw || rawBytes > INDEX_BODY_BYTES_MAX)
    throw fail(`has a bad body length ${rawBytes}`);
  if (storedBytes !== r.remaining)
    throw fail(`body has ${r.remaining} bytes, its header says ${storedBytes}`);
  return { body: codec.decompress(r.slice(storedBytes), rawBytes), diskRefCount };
}

/**
 * The little-endian u32 entries as a host-order array: a view of `bytes` when the host is
 * little-endian and they are aligned (the decompressed body: the chunk table before them is
 * whole 48-byte entries), else a copy. The view spares a first touch of a fresh array, 4 bytes
 * a guest page (2 MiB for a 2 GiB guest), on the way to every restore.
 */
function entriesOf(bytes: Uint8Array): Uint32Array {
  if (littleEndianHost && bytes.byteOffset % PAGE_ENTRY_BYTES === 0)
    return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / PAGE_ENTRY_BYTES);
  const out = new Uint32Array(bytes.byteLength / PAGE_ENTRY_BYTES);
  const view = Buffer.from(out.buffer);
  view.set(bytes);
  if (!littleEndianHost) view.swap32();
  return out;
}
