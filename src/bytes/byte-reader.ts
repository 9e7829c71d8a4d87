/**
 * ByteReader: the one cursor that owns bounds checks over a byte slice. Parsers call
 * u8/u16/u32/u64/slice and never index raw buffers. All integers are big-endian (QEMU's wire
 * order). `base` is the absolute offset of `bytes[0]` in the whole stream, so every error
 * names the byte offset a user can look up with `xxd -s`.
 *
 * Invariant: 0 <= position <= bytes.byteLength; reads either succeed whole or throw and
 * leave the position unchanged.
 */
import { DecodeError } from "../errors.ts";

const TWO_POW_32 = 0x1_0000_0000;

export class ByteReader {
  readonly bytes: Uint8Array;
  readonly base: number;
  readonly #view: DataView;
  #pos = 0;

  constructor(bytes: Uint8Array, base = 0) {
    this.bytes = bytes;
    this.base = base;
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
    return this.#view.getUint16(this.#take(2));
  }

  u32(): number {
    return this.#view.getUint32(this.#take(4));
  }

  u64(): bigint {
    return this.#view.getBigUint64(this.#take(8));
  }

  /**
   * A be64 that must fit a JS number exactly (lengths, offsets). `what` names the field in
   * the error thrown when the value is 2^53 or more.
   */
  u64Number(what: string): number {
    const at = this.offset;
    const start = this.#take(8);
    const hi = this.#view.getUint32(start);
    const lo = this.#view.getUint32(start + 4);
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
