/**
 * ByteReader: the one cursor that owns bounds checks over a byte slice. Parsers call
 * u8/u16/u32/u64/slice and never index raw buffers. Integers are read in the reader's byte
 * order: big-endian by default (QEMU's wire order, qcow2), little-endian for the checkpoint's
 * own files (docs/format.md). `base` is the absolute offset of `bytes[0]` in the whole
 * stream or file, so every error names the byte offset a user can look up with `xxd -s`.
 *
 * Invariant: 0 <= position <= bytes.byteLength; reads either succeed whole or throw and
 * leave the position unchanged.
 */
import { DecodeError } from "../errors.ts";

const TWO_POW_32 = 0x1_0000_0000;

/** The order of a multi-byte integer's bytes: most significant first, or least. */
export type ByteOrder = "big-endian" | "little-endian";

export class ByteReader {
  readonly bytes: Uint8Array;
  readonly base: number;
  readonly order: ByteOrder;
  readonly #view: DataView;
  /** DataView's own flag, fixed at construction so the hot reads do not branch. */
  readonly #littleEndian: boolean;
  #pos = 0;

  constructor(bytes: Uint8Array, base = 0, order: ByteOrder = "big-endian") {
    this.bytes = bytes;
    this.base = base;
    this.order = order;
    this.#littleEndian = order === "little-endian";
    // Node Buffers are often views into a larger pooled ArrayBuffer.
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Absolute offset of the next unread byte. */
  get offset(): number {
    return this.base + this.#pos;
  }

  /** Offset of the next unread byte inside `bytes`. */
  get position(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.bytes.byteLength - this.#pos;
  }

  /** The only bounds check: reserves n bytes and returns where they start. */
  #take(n: number): number {
    if (n > this.bytes.byteLength - this.#pos) {
      throw new DecodeError(
        `Cannot read ${n} bytes: input ends after ${this.bytes.byteLength - this.#pos}`,
        this.offset,
      );
    }
    const start = this.#pos;
    this.#pos += n;
    return start;
  }

  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }

  u16(): number {
    return this.#view.getUint16(this.#take(2), this.#littleEndian);
  }

  u32(): number {
    return this.#view.getUint32(this.#take(4), this.#littleEndian);
  }

  u64(): bigint {
    return this.#view.getBigUint64(this.#take(8), this.#littleEndian);
  }

  /**
   * A u64 that must fit a JS number exactly (lengths, offsets). `what` names the field in
   * the error thrown when the value is 2^53 or more.
   */
  u64Number(what: string): number {
    const at = this.offset;
    const start = this.#take(8);
    const hi = this.#view.getUint32(this.#littleEndian ? start + 4 : start, this.#littleEndian);
    const lo = this.#view.getUint32(this.#littleEndian ? start : start + 4, this.#littleEndian);
    const value = hi * TWO_POW_32 + lo;
    if (!Number.isSafeInteger(value)) {
      throw new DecodeError(`Cannot read ${what}: 0x${toHex(hi, lo)} is too large`, at);
    }
    return value;
  }

  /** The next byte without consuming it. */
  peekU8(): number {
    const at = this.#take(1);
    this.#pos = at;
    return this.#view.getUint8(at);
  }

  /** A zero-copy view of the next n bytes. */
  slice(n: number): Uint8Array {
    const start = this.#take(n);
    return this.bytes.subarray(start, start + n);
  }

  skip(n: number): void {
    this.#take(n);
  }

  /** Reserved bytes: zero in every version that has them, so anything else is corrupt. */
  reserved(n: number): void {
    const at = this.offset;
    for (const byte of this.slice(n)) {
      if (byte !== 0) throw new DecodeError(`Cannot read ${n} reserved bytes: not zero`, at);
    }
  }

  /** n bytes as a string, one char per byte (lossless; QEMU idstrs are plain bytes). */
  latin1(n: number): string {
    const start = this.#take(n);
    return latin1Decode(this.bytes.subarray(start, start + n));
  }
}

/** Bytes to a string of the same length, one char per byte. */
export function latin1Decode(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return text;
}

function toHex(hi: number, lo: number): string {
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}
