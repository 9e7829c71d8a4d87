/**
 * device.bin (docs/format.md §5): QEMU's device sections and vmdescription, opaque to us, behind
 * a 32-byte header. decodeDeviceState runs after the file's SHA-256 matched the manifest.
 */
import { ByteReader, ByteWriter } from "../../bytes/index.ts";
import { DecodeError, InvalidCheckpointError } from "../../errors.ts";
import { DEVICE_STATE_BYTES_MAX } from "../../limits.ts";
import {
  BYTE_ORDER,
  DEVICE_FLAG_VMDESCRIPTION,
  DEVICE_HEADER_BYTES,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  Magic,
  Minor,
} from "./format.ts";

export interface DeviceState {
  readonly sections: Uint8Array;
  readonly vmdescription: Uint8Array | null;
}

/** Largest device.bin accepted: the blobs' limit plus the header. */
export const DEVICE_FILE_BYTES_MAX = DEVICE_STATE_BYTES_MAX + DEVICE_HEADER_BYTES;

export function encodeDeviceState(state: DeviceState): Uint8Array {
  const vmdesc = state.vmdescription;
  const h = new ByteWriter(DEVICE_HEADER_BYTES, BYTE_ORDER)
    .latin1(Magic.device)
    .u16(FORMAT_MAJOR)
    .u16(Minor.base)
    .u32(vmdesc === null ? 0 : DEVICE_FLAG_VMDESCRIPTION)
    .reserved(4)
    .u64(state.sections.byteLength)
    .u64(vmdesc?.byteLength ?? 0)
    .takeExactly(DEVICE_HEADER_BYTES);
  return Buffer.concat([h, state.sections, vmdesc ?? new Uint8Array(0)]);
}

export function decodeDeviceState(
  bytes: Uint8Array,
  checkpoint: string,
  file: string,
): DeviceState {
  const fail = (why: string, cause?: unknown) =>
    new InvalidCheckpointError(checkpoint, `device state file "${file}" ${why}`, { cause });
  if (bytes.byteLength < DEVICE_HEADER_BYTES) throw fail("is shorter than its header");
  try {
    const r = new ByteReader(bytes, 0, BYTE_ORDER);
    if (r.latin1(4) !== Magic.device) throw fail("is not a device state file (bad magic)");
    const major = r.u16();
    const minor = r.u16();
    if (major !== FORMAT_MAJOR || minor > FORMAT_MINOR)
      throw fail(`has unsupported version ${major}.${minor}`);
    const flags = r.u32();
    if ((flags & ~DEVICE_FLAG_VMDESCRIPTION) !== 0)
      throw fail(`has unknown flags 0x${flags.toString(16)}`);
    r.reserved(4);
    const sectionsBytes = r.u64Number("sections length");
    const vmdescBytes = r.u64Number("vmdescription length");
    const hasVmdesc = (flags & DEVICE_FLAG_VMDESCRIPTION) !== 0;
    if (!hasVmdesc && vmdescBytes !== 0)
      throw fail("has vmdescription bytes but no vmdescription flag");
    if (sectionsBytes + vmdescBytes !== r.remaining) {
      throw fail(
        `holds ${r.remaining} bytes of state, its header says ${sectionsBytes + vmdescBytes}`,
      );
    }
    const sections = r.slice(sectionsBytes);
    return { sections, vmdescription: hasVmdesc ? r.slice(vmdescBytes) : null };
  } catch (error) {
    if (error instanceof DecodeError) throw fail(`is malformed: ${error.message}`, error);
    throw error;
  }
}
