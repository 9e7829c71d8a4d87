/**
 * Constants and fixed layouts of checkpoint format 1.3, mirroring docs/format.md (the spec).
 * Everything here is a fact about bytes on disk; changing any value is a format change
 * (see "Versioning" in the spec).
 */
import assert from "node:assert/strict";
import type { ByteOrder } from "../../bytes/index.ts";
import {
  CHECKPOINT_CHUNKS_MAX,
  CHECKPOINT_DISK_REFS_MAX,
  CHECKPOINT_PAGES_MAX,
  CHUNK_PAGES_MAX,
  INDEX_BYTES_MAX,
} from "../../limits.ts";

/** The newest version this code reads and writes (major must match; any minor up to this). */
export const FORMAT_MAJOR = 1;
export const FORMAT_MINOR = 3;
export const formatVersion = `${FORMAT_MAJOR}.${FORMAT_MINOR}`;
/**
 * Minor versions and what each adds. A checkpoint is written with the lowest minor that
 * describes it, so one without disk layers stays readable by 1.0 readers; files whose layout
 * did not change (pack, device state) always carry minor 0.
 */
export const Minor = { base: 0, diskLayers: 1, sharedPacks: 2, runtime: 3 } as const;

/** Manifest line 1 is `snapwake-checkpoint <major>.<minor>\n`. */
export const MANIFEST_MAGIC = "snapwake-checkpoint ";
/** Each manifest header line ends within this many bytes; more is not a manifest. */
export const MANIFEST_HEADER_LINE_BYTES_MAX = 256;

/** Fixed file names of a v1 checkpoint directory. */
export const FileName = {
  manifest: "manifest",
  index: "index.bin",
  pack: "chunks.pack",
  device: "device.bin",
} as const;
/** A file name the manifest may name: plain, no directories, no "..". */
export const FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The byte order of every integer in the binary files (index.bin, packs, device.bin). */
export const BYTE_ORDER: ByteOrder = "little-endian";

/** Binary file magics, ASCII, read as the first 4 bytes. */
export const Magic = { index: "SWIX", pack: "SWPK", device: "SWDS" } as const;

/** index.bin: 64-byte header, then the (compressed) body. */
export const INDEX_HEADER_BYTES = 64;
/**
 * One chunk-table entry: offset u64 | storedBytes u32 | pageCount u16 | codec u8 | pack u8 |
 * sha256. The pack byte (1.2; reserved 0 before) is 0 for the checkpoint's own pack, k ≥ 1 for
 * the manifest's `packs[k - 1]`: another checkpoint's pack this one shares (a parent's).
 */
export const CHUNK_ENTRY_BYTES = 48;
/** One page-map entry: kind (3 bits) | payload (29 bits), a u32. */
export const PAGE_ENTRY_BYTES = 4;
/** The most other packs one checkpoint's chunks may name (the pack byte's range). */
export const SHARED_PACKS_MAX = 255;
/** A shared pack's file name in the checkpoint directory: a hard link to the pack it shares. */
export function sharedPackFile(id: string): string {
  return `pack-${id}.pack`;
}
/** A pack's identity: 16 lowercase hex digits (1.2 manifests record it as `chunks.id`). */
export const PACK_ID_PATTERN = /^[0-9a-f]{16}$/;
/** chunks.pack: 16-byte header, then the chunks back to back. */
export const PACK_HEADER_BYTES = 16;
/** device.bin: 32-byte header, then sections and vmdescription. */
export const DEVICE_HEADER_BYTES = 32;
/** device.bin flag bit 0: a vmdescription follows the sections. */
export const DEVICE_FLAG_VMDESCRIPTION = 1;

/**
 * Page-map kinds (bits 31..29). 2 (1.1): the page equals a block of a frozen disk layer; its
 * payload is chunk << 6 | slot like a stored page, the chunk being a disk chunk. 3.. reserved.
 */
export const PageKind = { zero: 0, stored: 1, diskDuplicate: 2, parent: 3 } as const;
export const KIND_SHIFT = 29;
export const PAYLOAD_MASK = (1 << KIND_SHIFT) - 1;
/** Stored payload: chunk index (23 bits) << 6 | slot (6 bits). */
export const SLOT_BITS = 6;
export const SLOT_MASK = (1 << SLOT_BITS) - 1;
/** Zero payload: the fill byte; the other 21 bits are zero. */
export const FILL_MASK = 0xff;

/** Entry of a zero page filled with `fill`. */
export function zeroEntry(fill: number): number {
  return ((PageKind.zero << KIND_SHIFT) | (fill & FILL_MASK)) >>> 0;
}

/** Entry of a page stored in `chunk` at `slot`. */
export function storedEntry(chunk: number, slot: number): number {
  return ((PageKind.stored << KIND_SHIFT) | (chunk << SLOT_BITS) | slot) >>> 0;
}

/** Entry of a page that is `slot` of disk chunk `chunk` (1.1). */
export function diskEntry(chunk: number, slot: number): number {
  return ((PageKind.diskDuplicate << KIND_SHIFT) | (chunk << SLOT_BITS) | slot) >>> 0;
}

/**
 * Chunk-table codec 0x80 (1.1): a disk chunk. Its pages are not in the pack but in frozen disk
 * layers, named by consecutive disk-reference entries starting at the entry's `offset`;
 * `storedBytes` is 0; its sha256 is the usual hash list of its pages' digests.
 */
export const DISK_CHUNK_CODEC = 0x80;
/** One disk-reference entry: layer u32 | reserved u32 | guest offset u64 | sha256 (32). */
export const DISK_REF_ENTRY_BYTES = 48;

assert(CHUNK_PAGES_MAX <= 1 << SLOT_BITS, "a slot fits its page-map field");
assert(CHECKPOINT_CHUNKS_MAX <= 1 << (KIND_SHIFT - SLOT_BITS), "a chunk index fits its field");
assert(
  INDEX_BYTES_MAX ===
    CHECKPOINT_CHUNKS_MAX * CHUNK_ENTRY_BYTES + CHECKPOINT_PAGES_MAX * PAGE_ENTRY_BYTES,
  "INDEX_BYTES_MAX matches the index layout",
);

/** The largest decompressed index body of 1.1: the 1.0 bound plus a full disk-reference table. */
export const INDEX_BODY_BYTES_MAX =
  INDEX_BYTES_MAX + CHECKPOINT_DISK_REFS_MAX * DISK_REF_ENTRY_BYTES;
assert(CHECKPOINT_DISK_REFS_MAX < 1 << KIND_SHIFT, "a disk-reference index fits the payload");
