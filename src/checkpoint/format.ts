/**
 * Constants and fixed layouts of checkpoint format 1.0, mirroring docs/format.md (the spec).
 * Everything here is a fact about bytes on disk; changing any value is a format change
 * (see "Versioning" in the spec).
 */
import assert from "node:assert/strict";
import {
  CHECKPOINT_CHUNKS_MAX,
  CHECKPOINT_PAGES_MAX,
  CHUNK_PAGES_MAX,
  INDEX_BYTES_MAX,
} from "../limits.ts";

/** The version this code writes, and the newest minor it reads (major must match). */
export const FORMAT_MAJOR = 1;
export const FORMAT_MINOR = 0;
export const formatVersion = `${FORMAT_MAJOR}.${FORMAT_MINOR}`;

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

/** Binary file magics, ASCII, read as the first 4 bytes. */
export const Magic = { index: "SWIX", pack: "SWPK", device: "SWDS" } as const;

/** index.bin: 64-byte header, then the (compressed) body. */
export const INDEX_HEADER_BYTES = 64;
/** One chunk-table entry: offset u64 | storedBytes u32 | pageCount u16 | codec u8 | rsvd u8 | sha256. */
export const CHUNK_ENTRY_BYTES = 48;
/** One page-map entry: kind (3 bits) | payload (29 bits), a u32. */
export const PAGE_ENTRY_BYTES = 4;
/** chunks.pack: 16-byte header, then the chunks back to back. */
export const PACK_HEADER_BYTES = 16;
/** device.bin: 32-byte header, then sections and vmdescription. */
export const DEVICE_HEADER_BYTES = 32;
/** device.bin flag bit 0: a vmdescription follows the sections. */
export const DEVICE_FLAG_VMDESCRIPTION = 1;

/** Page-map kinds (bits 31..29). Kinds 2.. are reserved for later versions; v1.0 rejects them. */
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

assert(CHUNK_PAGES_MAX <= 1 << SLOT_BITS, "a slot fits its page-map field");
assert(CHECKPOINT_CHUNKS_MAX <= 1 << (KIND_SHIFT - SLOT_BITS), "a chunk index fits its field");
assert(
  INDEX_BYTES_MAX ===
    CHECKPOINT_CHUNKS_MAX * CHUNK_ENTRY_BYTES + CHECKPOINT_PAGES_MAX * PAGE_ENTRY_BYTES,
  "INDEX_BYTES_MAX matches the index layout",
);
