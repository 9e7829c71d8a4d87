/**
 * Every limit in one place. Names carry units, last. Each says why.
 * Relationships between limits are asserted when the module loads.
 */
import assert from "node:assert/strict";

/** x86 target page size: QEMU 7.2 TARGET_PAGE_BITS = 12. */
export const PAGE_SIZE_BYTES = 4096;
/** Pages per stored chunk: one compression frame, one read, one hash. 64 × 4 KiB = 256 KiB. */
export const CHUNK_PAGES_MAX = 64;
/** Device state (FULL sections) is small (~100s of KiB); more means a stream we do not understand. */
export const DEVICE_STATE_BYTES_MAX = 64 * 1024 * 1024;
/** RAM blocks per VM: QEMU has about ten; thousands is a corrupt stream. */
export const RAM_BLOCKS_MAX = 1024;
/** Largest RAM block we accept: 1 TiB. */
export const RAM_BLOCK_BYTES_MAX = 2 ** 40;
/** QMP replies are small; bigger is a bug or an attack. */
export const QMP_LINE_BYTES_MAX = 1 << 20;
/** Default time to wait for one QMP command's reply. */
export const QMP_COMMAND_TIMEOUT_MS = 30_000;
/** A manifest is JSON of a few KiB; bound what we read before trusting it. */
export const MANIFEST_BYTES_MAX = 16 * 1024 * 1024;

assert(CHUNK_PAGES_MAX * PAGE_SIZE_BYTES <= 2 ** 31, "chunk length fits its u32 field");
assert(Number.isSafeInteger(RAM_BLOCK_BYTES_MAX * RAM_BLOCKS_MAX), "total RAM fits a JS number");
