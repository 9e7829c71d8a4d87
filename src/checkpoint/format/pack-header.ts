/**
 * The 16-byte header that opens every pack (docs/format.md §4): magic, version, flags and
 * reserved bytes, little-endian. Writing a pack and checking one someone else wrote (a shared
 * pack, format 1.2) both need it, so it sits with the format, not with either.
 */
import { ByteReader, ByteWriter } from "../../bytes/index.ts";
import {
  BYTE_ORDER,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  Magic,
  Minor,
  PACK_HEADER_BYTES,
} from "./format.ts";

/** The header of a new pack: version 1.0 (packs have not changed since), no flags. */
export function encodePackHeader(): Uint8Array {
  return new ByteWriter(PACK_HEADER_BYTES, BYTE_ORDER)
    .latin1(Magic.pack)
    .u16(FORMAT_MAJOR)
    .u16(Minor.base)
    .u32(0) // flags
    .reserved(4)
    .takeExactly(PACK_HEADER_BYTES);
}

/** Why `header` is not a v1 pack header, or null. */
export function checkPackHeader(header: Uint8Array): string | null {
  const r = new ByteReader(header, 0, BYTE_ORDER);
  if (header.byteLength < PACK_HEADER_BYTES) return "is shorter than its header";
  if (r.latin1(4) !== Magic.pack) return "is not a checkpoint pack (bad magic)";
  const major = r.u16();
  const minor = r.u16();
  if (major !== FORMAT_MAJOR || minor > FORMAT_MINOR)
    return `has unsupported version ${major}.${minor}`;
  if (r.u32() !== 0) return "has unknown flags";
  if (r.u32() !== 0) return "has non-zero reserved bytes";
  return null;
}
