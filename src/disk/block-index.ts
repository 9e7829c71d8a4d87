/**
 * BlockIndex: the SHA-256 of every non-zero 4 KiB guest block of one layer's own data
 * (backing layers are indexed separately: an overlay's index covers only its allocated
 * clusters), searchable by a page's digest. Built once per frozen layer by one sequential
 * pass over its data clusters, and cached next to the layer (`<id>.index`, format below).
 *
 * The table keeps the first 8 bytes of each digest and the block's guest offset, sorted by key:
 * 16 bytes a block. A hit is a candidate only; the saver confirms it by reading the block
 * (bytes equal) and a restore by its full SHA-256, so an 8-byte key can cause a miss, never a
 * wrong page. The build also yields `contentSha256`, SHA-256 over (guest offset, digest) of
 * every non-zero block in guest order: the layer's content identity.
 *
 * File (big-endian): "SWLX" | major u16 1 | minor u16 0 | flags u32 0 | blockBytes u32 4096 |
 * entries u64 | layerBytes u64 | metaSha256[32] | contentSha256[32] | bodySha256[32] | body:
 * entries × (key[8] | guestOffset u64).
 */
import crypto from "node:crypto";
import { ByteReader, ByteWriter } from "../bytes/index.ts";
import { DecodeError } from "../errors.ts";
import { LAYER_INDEX_BLOCKS_MAX, LAYER_READ_BYTES, PAGE_SIZE_BYTES } from "../limits.ts";
import { DiskLayerError } from "./layer-error.ts";
import type { LayerFile } from "./layer-file.ts";

const MAGIC = 0x53574c58; // "SWLX"
const MAJOR = 1;
const MINOR = 0;
export const BLOCK_INDEX_HEADER_BYTES = 128;
const ENTRY_BYTES = 16;
const DIGEST_BYTES = 32;
const ZERO_BLOCK = Buffer.alloc(PAGE_SIZE_BYTES);

/** What the index file says about the layer it was built from. */
export interface IndexedLayer {
  readonly layerBytes: number;
  readonly metaSha256: string;
  readonly contentSha256: string;
}

export class BlockIndex {
  /** keys[2i], keys[2i+1]: the digest's first and second big-endian u32; sorted. */
  readonly #keys: Uint32Array;
  readonly #offsets: Float64Array;
  readonly layer: IndexedLayer;

  private constructor(keys: Uint32Array, offsets: Float64Array, layer: IndexedLayer) {
    this.#keys = keys;
    this.#offsets = offsets;
    this.layer = layer;
  }

  get size(): number {
    return this.#offsets.length;
  }

  /** The guest offset of a block whose digest starts like `digest`, or -1. */
  find(digest: Uint8Array): number {
    const d = Buffer.from(digest.buffer, digest.byteOffset, DIGEST_BYTES);
    const hi = d.readUInt32BE(0);
    const lo = d.readUInt32BE(4);
    const keys = this.#keys;
    let a = 0;
    let b = this.#offsets.length - 1;
    while (a <= b) {
      const m = (a + b) >>> 1;
      const mh = keys[2 * m] ?? 0;
      const ml = keys[2 * m + 1] ?? 0;
      if (mh === hi && ml === lo) return this.#offsets[m] ?? -1;
      if (mh < hi || (mh === hi && ml < lo)) a = m + 1;
      else b = m - 1;
    }
    return -1;
  }

  /** Indexes `layer` in one pass over its data, in host order. */
  static async build(layer: LayerFile): Promise<BlockIndex> {
    const found = await hashBlocks(layer);
    const n = found.offsets.length;
    const byOffset = Array.from({ length: n }, (_, i) => i).sort(
      (x, y) => (found.offsets[x] ?? 0) - (found.offsets[y] ?? 0),
    );
    const content = crypto.createHash("sha256");
    const record = Buffer.alloc(8 + DIGEST_BYTES);
    for (const i of byOffset) {
      record.writeBigUInt64BE(BigInt(found.offsets[i] ?? 0), 0);
      found.digests.copy(record, 8, i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
      content.update(record);
    }
    const key = (i: number, w: number) => found.digests.readUInt32BE(i * DIGEST_BYTES + w * 4);
    const byKey = byOffset.sort((x, y) => key(x, 0) - key(y, 0) || key(x, 1) - key(y, 1));
    const keys: number[] = [];
    const offsets: number[] = [];
    for (const i of byKey) {
      const last = offsets.length - 1;
      if (last >= 0 && keys[2 * last] === key(i, 0) && keys[2 * last + 1] === key(i, 1)) continue;
      keys.push(key(i, 0), key(i, 1));
      offsets.push(found.offsets[i] ?? 0);
    }
    return new BlockIndex(Uint32Array.from(keys), Float64Array.from(offsets), {
      layerBytes: layer.bytes,
      metaSha256: layer.metaSha256,
      contentSha256: content.digest("hex"),
    });
  }

  encode(): Uint8Array {
    const body = new ByteWriter(Math.max(1, this.size * ENTRY_BYTES));
    for (let i = 0; i < this.size; i++) {
      body.u32(this.#keys[2 * i] ?? 0).u32(this.#keys[2 * i + 1] ?? 0);
      body.u64(this.#offsets[i] ?? 0);
    }
    const bodyBytes = body.take();
    const header = new ByteWriter(BLOCK_INDEX_HEADER_BYTES)
      .u32(MAGIC)
      .u16(MAJOR)
      .u16(MINOR)
      .u32(0)
      .u32(PAGE_SIZE_BYTES)
      .u64(this.size)
      .u64(this.layer.layerBytes)
      .bytes(Buffer.from(this.layer.metaSha256, "hex"))
      .bytes(Buffer.from(this.layer.contentSha256, "hex"))
      .bytes(crypto.hash("sha256", bodyBytes, "buffer"))
      .take();
    return Buffer.concat([header, bodyBytes]);
  }

  /** Decodes an index file; throws DecodeError when it is not one or is damaged. */
  static decode(bytes: Uint8Array): BlockIndex {
    const r = new ByteReader(bytes);
    if (r.u32() !== MAGIC) throw new DecodeError("not a layer index (bad magic)", 0);
    const major = r.u16();
    const minor = r.u16();
    if (major !== MAJOR || minor > MINOR) throw new DecodeError(`version ${major}.${minor}`, 4);
    if (r.u32() !== 0) throw new DecodeError("unknown flags", 8);
    if (r.u32() !== PAGE_SIZE_BYTES) throw new DecodeError("block size is not 4096", 12);
    const entries = r.u64Number("entries");
    const layerBytes = r.u64Number("layer bytes");
    const hex = () => Buffer.from(r.slice(DIGEST_BYTES)).toString("hex");
    const layer = { layerBytes, metaSha256: hex(), contentSha256: hex() };
    const bodyHash = r.slice(DIGEST_BYTES);
    if (entries > LAYER_INDEX_BLOCKS_MAX || entries * ENTRY_BYTES !== r.remaining) {
      throw new DecodeError(`${entries} entries in ${r.remaining} bytes`, 16);
    }
    const body = r.slice(r.remaining);
    if (!crypto.hash("sha256", body, "buffer").equals(bodyHash)) {
      throw new DecodeError("body hash mismatch", BLOCK_INDEX_HEADER_BYTES);
    }
    const b = new ByteReader(body, BLOCK_INDEX_HEADER_BYTES);
    const keys = new Uint32Array(entries * 2);
    const offsets = new Float64Array(entries);
    for (let i = 0; i < entries; i++) {
      keys[2 * i] = b.u32();
      keys[2 * i + 1] = b.u32();
      offsets[i] = b.u64Number("guest offset");
    }
    return new BlockIndex(keys, offsets, layer);
  }
}

/** Digest and guest offset of every whole, non-zero 4 KiB block of the layer's own data. */
async function hashBlocks(layer: LayerFile): Promise<{ digests: Buffer; offsets: number[] }> {
  const offsets: number[] = [];
  let digests = Buffer.alloc(DIGEST_BYTES * 4096);
  if (layer.clusterBytes < PAGE_SIZE_BYTES) return { digests, offsets }; // no whole blocks
  const buffer = Buffer.alloc(LAYER_READ_BYTES);
  for (const read of coalesce(layer.dataRuns())) {
    const data = buffer.subarray(0, read.bytes);
    await layer.readHost(data, read.hostOffset);
    for (const run of read.runs) {
      for (let at = 0; at + PAGE_SIZE_BYTES <= run.bytes; at += PAGE_SIZE_BYTES) {
        const start = run.hostOffset - read.hostOffset + at;
        const block = data.subarray(start, start + PAGE_SIZE_BYTES);
        if (block.equals(ZERO_BLOCK)) continue;
        if (offsets.length >= LAYER_INDEX_BLOCKS_MAX) {
          throw new DiskLayerError(layer.path, `it has over ${LAYER_INDEX_BLOCKS_MAX} blocks`);
        }
        if ((offsets.length + 1) * DIGEST_BYTES > digests.byteLength) {
          digests = Buffer.concat([digests, Buffer.alloc(digests.byteLength)]);
        }
        const digest = crypto.hash("sha256", block, "binary");
        digests.write(digest, offsets.length * DIGEST_BYTES, DIGEST_BYTES, "latin1");
        offsets.push(run.guestOffset + at);
      }
    }
  }
  return { digests, offsets };
}

type Run = { guestOffset: number; hostOffset: number; bytes: number };

/** Runs that are back to back in the file, merged into reads of at most LAYER_READ_BYTES. */
function coalesce(runs: Run[]): { hostOffset: number; bytes: number; runs: Run[] }[] {
  const reads: { hostOffset: number; bytes: number; runs: Run[] }[] = [];
  for (const run of runs.flatMap(split)) {
    const last = reads[reads.length - 1];
    const adjacent = last !== undefined && last.hostOffset + last.bytes === run.hostOffset;
    if (adjacent && last.bytes + run.bytes <= LAYER_READ_BYTES) {
      last.bytes += run.bytes;
      last.runs.push(run);
    } else {
      reads.push({ hostOffset: run.hostOffset, bytes: run.bytes, runs: [run] });
    }
  }
  return reads;
}

/** A run longer than one read (qcow2 clusters reach 2 MiB), cut into reads. */
function split(run: Run): Run[] {
  const pieces: Run[] = [];
  for (let at = 0; at < run.bytes; at += LAYER_READ_BYTES) {
    const bytes = Math.min(LAYER_READ_BYTES, run.bytes - at);
    pieces.push({ guestOffset: run.guestOffset + at, hostOffset: run.hostOffset + at, bytes });
  }
  return pieces;
}
