/**
 * The chunk table (docs/format.md §3.1): 48 bytes a chunk, kept as raw bytes rather than
 * objects so a checkpoint of millions of chunks costs no garbage. ChunkTableBuilder appends
 * while the pack is written; ChunkTable reads a table that checkChunkTable has validated.
 */
import assert from "node:assert/strict";
import { CHECKPOINT_CHUNKS_MAX, CHUNK_PAGES_MAX, PAGE_SIZE_BYTES } from "../../limits.ts";
import { codecById } from "./codec.ts";
import { CHUNK_ENTRY_BYTES, DISK_CHUNK_CODEC, PACK_HEADER_BYTES } from "./format.ts";

const SHA256_BYTES = 32;

export interface ChunkEntry {
  readonly offset: number;
  readonly storedBytes: number;
  readonly pageCount: number;
  readonly codec: number;
  /** 0: the checkpoint's own pack; k ≥ 1: the manifest's `packs[k - 1]` (1.2). */
  readonly pack?: number;
  readonly sha256: Uint8Array;
}

export class ChunkTable {
  readonly bytes: Uint8Array;
  readonly count: number;
  readonly #view: DataView;

  constructor(bytes: Uint8Array) {
    assert(bytes.byteLength % CHUNK_ENTRY_BYTES === 0, "chunk table is whole entries");
    this.bytes = bytes;
    this.count = bytes.byteLength / CHUNK_ENTRY_BYTES;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  entry(chunk: number): ChunkEntry {
    assert(Number.isInteger(chunk) && chunk >= 0 && chunk < this.count, "chunk index in table");
    const at = chunk * CHUNK_ENTRY_BYTES;
    return {
      offset: Number(this.#view.getBigUint64(at, true)),
      storedBytes: this.#view.getUint32(at + 8, true),
      pageCount: this.#view.getUint16(at + 12, true),
      codec: this.#view.getUint8(at + 14),
      pack: this.#view.getUint8(at + 15),
      sha256: this.bytes.subarray(at + 16, at + 16 + SHA256_BYTES),
    };
  }

  pageCount(chunk: number): number {
    return this.#view.getUint16(chunk * CHUNK_ENTRY_BYTES + 12, true);
  }

  /** The pack holding `chunk`: 0 its own, k ≥ 1 the manifest's `packs[k - 1]` (1.2). */
  packOf(chunk: number): number {
    return this.#view.getUint8(chunk * CHUNK_ENTRY_BYTES + 15);
  }

  /** Whether `chunk` is a disk chunk (1.1): its pages are blocks of frozen layers. */
  isDisk(chunk: number): boolean {
    return this.#view.getUint8(chunk * CHUNK_ENTRY_BYTES + 14) === DISK_CHUNK_CODEC;
  }
}

/**
 * Why the table cannot describe the chunks of a pack of `packBytes`, shared packs of
 * `sharedPackBytes` (1.2) and a disk-reference table of `diskRefs` entries, or null if it can:
 * own-pack chunks come first, back to back from the pack header to the end of the file; then
 * chunks of shared packs, each inside its pack; then disk chunks covering the references in order.
 */
export function checkChunkTable(
  table: ChunkTable,
  packBytes: number,
  diskRefs = 0,
  sharedPackBytes: readonly number[] = [],
): string | null {
  let expected = PACK_HEADER_BYTES;
  let nextRef = 0;
  let shared = false;
  for (let i = 0; i < table.count; i++) {
    const e = table.entry(i);
    if (e.pageCount < 1 || e.pageCount > CHUNK_PAGES_MAX)
      return `chunk ${i} has ${e.pageCount} pages`;
    const pack = e.pack ?? 0;
    if (e.codec === DISK_CHUNK_CODEC) {
      if (pack !== 0) return `disk chunk ${i} names pack ${pack}`;
      if (e.offset !== nextRef || e.storedBytes !== 0 || nextRef + e.pageCount > diskRefs) {
        return `disk chunk ${i} does not cover disk references ${nextRef}.. of ${diskRefs}`;
      }
      nextRef += e.pageCount;
      continue;
    }
    if (nextRef > 0) return `chunk ${i} is a pack chunk after a disk chunk`;
    if (codecById(e.codec) === null) return `chunk ${i} uses unknown codec ${e.codec}`;
    const rawBytes = e.pageCount * PAGE_SIZE_BYTES;
    const sizeOk =
      e.codec === 0 ? e.storedBytes === rawBytes : e.storedBytes >= 1 && e.storedBytes < rawBytes;
    if (!sizeOk)
      return `chunk ${i} has an impossible stored length ${e.storedBytes} for ${e.pageCount} pages`;
    if (pack === 0) {
      if (shared) return `chunk ${i} of the own pack comes after a shared pack's chunk`;
      if (e.offset !== expected)
        return `chunk ${i} starts at byte ${e.offset}, expected ${expected}`;
      expected += e.storedBytes;
      continue;
    }
    shared = true;
    const bytes = sharedPackBytes[pack - 1];
    if (bytes === undefined) return `chunk ${i} names pack ${pack} of ${sharedPackBytes.length}`;
    if (e.offset < PACK_HEADER_BYTES || e.offset + e.storedBytes > bytes)
      return `chunk ${i} lies outside shared pack ${pack} (${bytes} bytes)`;
  }
  if (expected !== packBytes)
    return `chunks end at byte ${expected} but the pack has ${packBytes} bytes`;
  if (nextRef !== diskRefs) return `disk chunks cover ${nextRef} of ${diskRefs} disk references`;
  return null;
}

export class ChunkTableBuilder {
  #bytes = new Uint8Array(CHUNK_ENTRY_BYTES * 1024);
  #view = new DataView(this.#bytes.buffer);
  #count = 0;

  get count(): number {
    return this.#count;
  }

  append(e: ChunkEntry): number {
    assert(this.#count < CHECKPOINT_CHUNKS_MAX, "chunk count checked by the writer");
    assert(e.sha256.byteLength === SHA256_BYTES, "sha256 is 32 bytes");
    const at = this.#count * CHUNK_ENTRY_BYTES;
    if (at + CHUNK_ENTRY_BYTES > this.#bytes.byteLength) this.#grow();
    this.#view.setBigUint64(at, BigInt(e.offset), true);
    this.#view.setUint32(at + 8, e.storedBytes, true);
    this.#view.setUint16(at + 12, e.pageCount, true);
    this.#view.setUint8(at + 14, e.codec);
    this.#view.setUint8(at + 15, e.pack ?? 0);
    this.#bytes.set(e.sha256, at + 16);
    return this.#count++;
  }

  #grow(): void {
    const grown = new Uint8Array(this.#bytes.byteLength * 2);
    grown.set(this.#bytes);
    this.#bytes = grown;
    this.#view = new DataView(grown.buffer);
  }

  /** The table so far (a view; valid until the next append). */
  table(): ChunkTable {
    return new ChunkTable(this.#bytes.subarray(0, this.#count * CHUNK_ENTRY_BYTES));
  }
}
