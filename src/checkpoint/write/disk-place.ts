/**
 * Commit-time placement of disk references: drop those no page refers to any more (a page
 * re-sent with new content), sort the rest by (layer, offset), group them into disk chunks of
 * up to CHUNK_PAGES_MAX after the pack's chunks, and rewrite each provisional page-map entry
 * as (disk chunk, slot).
 */
import { CHUNK_PAGES_MAX } from "../../limits.ts";
import { chunkHashOfDigests, PAGE_DIGEST_BYTES } from "../format/chunk-hash.ts";
import { DiskRefTable } from "../format/disk-refs.ts";
import {
  DISK_CHUNK_CODEC,
  DISK_REF_ENTRY_BYTES,
  diskEntry,
  KIND_SHIFT,
  PAYLOAD_MASK,
  PageKind,
} from "../format/format.ts";
import type { LayerInfo } from "../format/manifest.ts";
import type { PageMap } from "../format/page-map.ts";
import type { ChunkPacker } from "./chunk-packer.ts";
import type { DiskPages } from "./disk-pages.ts";

export type { DiskPages };

export interface PlaceInput {
  readonly disk: DiskPages | null;
  readonly packer: ChunkPacker;
  readonly pageMap: PageMap;
  readonly layers: { readonly layers: readonly LayerInfo[] };
}

/** Appends the disk chunks to the packer's table and returns the disk-reference table. */
export function placeDiskRefs(s: PlaceInput): DiskRefTable {
  const refs = s.disk?.refs;
  if (refs === undefined || refs.count === 0) return new DiskRefTable(new Uint8Array(0));
  const entries = s.pageMap.entries;
  const used = new Uint8Array(refs.count);
  for (const e of entries)
    if (e >>> KIND_SHIFT === PageKind.diskDuplicate) used[e & PAYLOAD_MASK] = 1;
  const { table, rankOf } = refs.finish(
    s.layers.layers.map((l) => l.id),
    (ref) => used[ref] === 1,
  );
  const firstChunk = s.packer.table.count;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] ?? 0;
    if (e >>> KIND_SHIFT !== PageKind.diskDuplicate) continue;
    const rank = rankOf[e & PAYLOAD_MASK] ?? 0;
    entries[i] = diskEntry(firstChunk + Math.floor(rank / CHUNK_PAGES_MAX), rank % CHUNK_PAGES_MAX);
  }
  for (let first = 0; first < table.count; first += CHUNK_PAGES_MAX) {
    const pageCount = Math.min(CHUNK_PAGES_MAX, table.count - first);
    const digests = Buffer.alloc(pageCount * PAGE_DIGEST_BYTES);
    for (let k = 0; k < pageCount; k++) {
      const at = (first + k) * DISK_REF_ENTRY_BYTES + DISK_REF_ENTRY_BYTES - PAGE_DIGEST_BYTES;
      digests.set(table.bytes.subarray(at, at + PAGE_DIGEST_BYTES), k * PAGE_DIGEST_BYTES);
    }
    s.packer.table.append({
      offset: first,
      storedBytes: 0,
      pageCount,
      codec: DISK_CHUNK_CODEC,
      sha256: chunkHashOfDigests(digests),
    });
  }
  return table;
}
