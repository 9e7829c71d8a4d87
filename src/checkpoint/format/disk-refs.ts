/**
 * The disk-reference table (docs/format.md §3.3, format 1.1): one 48-byte entry per distinct
 * page content that the checkpoint does not store because a frozen disk layer holds it.
 * Entries are sorted by (layer, guest offset), so a restore reads each layer front to back;
 * disk chunks (codec DISK_CHUNK_CODEC in the chunk table) cover them 64 at a time, in order.
 *
 * DiskRefCollector gathers references while a save runs (provisional ids in arrival order)
 * and sorts them at commit, returning the provisional → final order for the page map.
 */
import assert from "node:assert/strict";
import { ByteReader, ByteWriter } from "../../bytes/index.ts";
import { CHECKPOINT_DISK_REFS_MAX, PAGE_SIZE_BYTES } from "../../limits.ts";
import { PAGE_DIGEST_BYTES } from "./chunk-hash.ts";
import { DedupIndex } from "./dedup-index.ts";
import { BYTE_ORDER, DISK_REF_ENTRY_BYTES } from "./format.ts";

export interface DiskRef {
  /** Index into the manifest's `layers`. */
  readonly layer: number;
  /** Guest byte offset of the 4 KiB block inside that layer's disk. */
  readonly offsetBytes: number;
  /** SHA-256 of the block (= of the page). */
  readonly sha256: Uint8Array;
}

export class DiskRefTable {
  readonly bytes: Uint8Array;
  readonly count: number;

  constructor(bytes: Uint8Array) {
    assert(bytes.byteLength % DISK_REF_ENTRY_BYTES === 0, "disk-reference table is whole entries");
    this.bytes = bytes;
    this.count = bytes.byteLength / DISK_REF_ENTRY_BYTES;
  }

  entry(i: number): DiskRef {
    assert(Number.isInteger(i) && i >= 0 && i < this.count, "disk reference in table");
    const r = new ByteReader(this.bytes.subarray(i * DISK_REF_ENTRY_BYTES), 0, BYTE_ORDER);
    const layer = r.u32();
    r.u32(); // reserved, checked by checkDiskRefs
    return { layer, offsetBytes: r.u64Number("offset"), sha256: r.slice(PAGE_DIGEST_BYTES) };
  }
}

/** Why the table is invalid for these layers, or null: every entry names a layer and a block. */
export function checkDiskRefs(
  table: DiskRefTable,
  layers: readonly { readonly id: string; readonly virtualBytes: number }[],
): string | null {
  let previous: [number, number] = [-1, -1];
  for (let i = 0; i < table.count; i++) {
    const r = new ByteReader(table.bytes.subarray(i * DISK_REF_ENTRY_BYTES), 0, BYTE_ORDER);
    const layer = r.u32();
    if (r.u32() !== 0) return `disk reference ${i} has non-zero reserved bits`;
    const offset = r.u64Number("offset");
    const l = layers[layer];
    if (l === undefined) return `disk reference ${i} names layer ${layer} of ${layers.length}`;
    if (offset % PAGE_SIZE_BYTES !== 0 || offset + PAGE_SIZE_BYTES > l.virtualBytes) {
      return `disk reference ${i} points to offset ${offset} of layer ${l.id}`;
    }
    if (layer < previous[0] || (layer === previous[0] && offset <= previous[1])) {
      return `disk reference ${i} is out of (layer, offset) order`;
    }
    previous = [layer, offset];
  }
  return null;
}

/** Disk references found while saving, before their final order is known. */
export class DiskRefCollector {
  readonly #dedup = new DedupIndex();
  readonly #layerIds: string[] = [];
  #layers = new Uint32Array(1024);
  #offsets = new Float64Array(1024);
  #digests = Buffer.alloc(1024 * PAGE_DIGEST_BYTES);
  #count = 0;

  get count(): number {
    return this.#count;
  }

  /** The provisional id of a reference with this digest, or -1 (then `add` may follow). */
  find(digest: Uint8Array): number {
    return this.#dedup.get(digest);
  }

  /** Adds the reference whose digest the last `find` missed; returns its provisional id. */
  add(layerId: string, offsetBytes: number, digest: Uint8Array): number {
    assert(this.#count < CHECKPOINT_DISK_REFS_MAX, "disk references are at most one a page");
    const id = this.#count++;
    if (id >= this.#offsets.length) this.#grow();
    let layer = this.#layerIds.indexOf(layerId);
    if (layer < 0) layer = this.#layerIds.push(layerId) - 1;
    this.#layers[id] = layer;
    this.#offsets[id] = offsetBytes;
    this.#digests.set(digest, id * PAGE_DIGEST_BYTES);
    this.#dedup.addLast(id);
    return id;
  }

  /** Layer ids the references name, in first-use order. */
  get layerIds(): readonly string[] {
    return this.#layerIds;
  }

  /**
   * The sorted table of the references `keep` accepts, for the manifest's `layers` order
   * (every referenced id must be there), and rankOf[provisional id] = position in it.
   */
  finish(
    layerOrder: readonly string[],
    keep: (ref: number) => boolean,
  ): { table: DiskRefTable; rankOf: Uint32Array } {
    const final = this.#layerIds.map((id) => layerOrder.indexOf(id));
    assert(!final.includes(-1), "every referenced layer is in the checkpoint's layers");
    const layerOf = (i: number) => final[this.#layers[i] ?? 0] ?? 0;
    const kept = Array.from({ length: this.#count }, (_, i) => i).filter(keep);
    const order = kept.sort(
      (a, b) => layerOf(a) - layerOf(b) || (this.#offsets[a] ?? 0) - (this.#offsets[b] ?? 0),
    );
    const tableBytes = order.length * DISK_REF_ENTRY_BYTES;
    const w = new ByteWriter(Math.max(1, tableBytes), BYTE_ORDER);
    const rankOf = new Uint32Array(this.#count);
    order.forEach((i, rank) => {
      rankOf[i] = rank;
      w.u32(layerOf(i))
        .u32(0)
        .u64(this.#offsets[i] ?? 0);
      w.bytes(this.#digests.subarray(i * PAGE_DIGEST_BYTES, (i + 1) * PAGE_DIGEST_BYTES));
    });
    return { table: new DiskRefTable(w.takeExactly(tableBytes)), rankOf };
  }

  #grow(): void {
    const n = this.#offsets.length * 2;
    const layers = new Uint32Array(n);
    layers.set(this.#layers);
    const offsets = new Float64Array(n);
    offsets.set(this.#offsets);
    this.#layers = layers;
    this.#offsets = offsets;
    this.#digests = Buffer.concat([this.#digests, Buffer.alloc(this.#digests.byteLength)]);
  }
}
