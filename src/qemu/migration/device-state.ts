/**
 * The device state: everything after the final RAM END footer up to the end of the transport
 * (FULL sections, EOF, optional VMDESCRIPTION). FULL sections are not length-framed, so the
 * blob stays opaque; it is split per docs/migration-protocol.md §3.2 item 8: a trailing
 * VMDESCRIPTION is `00 06 be32(len) JSON` ending exactly at the end; otherwise the last byte
 * must be EOF.
 *
 * Invariant: the collector never holds more than its cap; the cap is checked before copying.
 */
import { ByteReader, ByteWriter } from "../../bytes/index.ts";
import { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { Section } from "./constants.ts";
import type { DeviceSectionName, DeviceSectionsSource, DeviceState } from "./records.ts";

/** EOF byte + 0x06 + be32 length. */
const VMDESC_PREFIX_BYTES = 6;

export class DeviceBlobCollector {
  readonly #startOffset: number;
  readonly #maxBytes: number;
  readonly #blob = new ByteWriter(64 * 1024);
  /** Index of the last 0x00 byte so far: the VMDESCRIPTION JSON holds none. */
  #lastNul = -1;

  constructor(startOffset: number, maxBytes: number) {
    this.#startOffset = startOffset;
    this.#maxBytes = maxBytes;
  }

  get length(): number {
    return this.#blob.length;
  }

  append(chunk: Uint8Array): void {
    if (this.#blob.length + chunk.byteLength > this.#maxBytes) {
      throw new UnsupportedStreamError(
        `Device state is larger than ${this.#maxBytes} bytes: not a stream snapwake understands`,
        this.#startOffset,
      );
    }
    const nul = chunk.lastIndexOf(0);
    if (nul !== -1) this.#lastNul = this.#blob.length + nul;
    this.#blob.bytes(chunk);
  }

  /** True when the bytes so far end with EOF + a complete VMDESCRIPTION. */
  endsWithVmdescription(): boolean {
    return findVmdescription(this.#blob.view(), this.#lastNul) !== null;
  }

  /** Checks and splits the whole blob once the transport has ended. */
  finish(): DeviceState {
    const blob = this.#blob.view();
    const at = this.#startOffset;
    if (blob.byteLength === 0) {
      throw new DecodeError("Truncated stream: it ends where the device state should start", at);
    }
    const first = new ByteReader(blob, at).u8();
    if (first !== Section.full && first !== Section.eof) {
      throw new DecodeError(
        `Device state must start with a FULL section (0x04) or EOF (0x00), found 0x${first.toString(16)}`,
        at,
      );
    }
    const eofIndex = findVmdescription(blob, this.#lastNul);
    if (eofIndex !== null) {
      return {
        sections: blob.slice(0, eofIndex + 1),
        vmdescription: blob.slice(eofIndex + VMDESC_PREFIX_BYTES),
      };
    }
    const last = new ByteReader(blob.subarray(blob.byteLength - 1), at + blob.byteLength - 1);
    if (last.u8() !== Section.eof) {
      throw new DecodeError(
        "Device state ends neither with EOF (0x00) nor with EOF + VMDESCRIPTION: truncated?",
        last.base,
      );
    }
    return { sections: blob.slice(), vmdescription: null };
  }
}

/** Index of the EOF byte of a trailing `00 06 be32(len) JSON`, or null if there is none. */
function findVmdescription(blob: Uint8Array, lastNul: number): number | null {
  // The JSON has no NUL, so the EOF byte lies at most 5 bytes before the last NUL.
  for (let p = Math.max(0, lastNul - (VMDESC_PREFIX_BYTES - 1)); p <= lastNul; p++) {
    if (p + VMDESC_PREFIX_BYTES > blob.byteLength) break;
    const r = new ByteReader(blob.subarray(p, p + VMDESC_PREFIX_BYTES));
    if (r.u8() !== Section.eof || r.u8() !== Section.vmdescription) continue;
    if (r.u32() !== blob.byteLength - p - VMDESC_PREFIX_BYTES) continue;
    if (parseJson(blob.subarray(p + VMDESC_PREFIX_BYTES)) !== undefined) return p;
  }
  return null;
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    const value: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    return typeof value === "object" && value !== null ? value : undefined;
  } catch (error) {
    // Not JSON (or not UTF-8): these bytes are not a VMDESCRIPTION.
    if (error instanceof SyntaxError || error instanceof TypeError) return undefined;
    throw error;
  }
}

/** Device section names: from the VMDESCRIPTION when present, else what is safe to say. */
export function deviceSectionsOf(
  state: DeviceState,
  offset: number,
): { readonly sections: DeviceSectionName[]; readonly from: DeviceSectionsSource } {
  const described = state.vmdescription === null ? null : namesFromJson(state.vmdescription);
  if (described !== null) return { sections: described, from: "vmdescription" };
  const r = new ByteReader(state.sections, offset);
  if (r.u8() !== Section.full) return { sections: [], from: "none" };
  r.u32(); // section id
  const name = r.latin1(r.u8());
  return { sections: [{ name, instanceId: r.u32() }], from: "first-section" };
}

/** `devices[].name` and `.instance_id` of a VMDESCRIPTION; null if it is not that shape. */
function namesFromJson(bytes: Uint8Array): DeviceSectionName[] | null {
  const json = parseJson(bytes);
  if (typeof json !== "object" || json === null || !("devices" in json)) return null;
  const devices: unknown = json.devices;
  if (!Array.isArray(devices)) return null;
  const names: DeviceSectionName[] = [];
  for (const device of devices as unknown[]) {
    if (typeof device !== "object" || device === null) return null;
    const name: unknown = "name" in device ? device.name : undefined;
    const instanceId: unknown = "instance_id" in device ? device.instance_id : undefined;
    if (typeof name !== "string" || typeof instanceId !== "number") return null;
    names.push({ name, instanceId });
  }
  return names;
}
