/**
 * ByteWriter: a growable buffer with puts in a byte order (big-endian unless told otherwise,
 * as ByteReader), the writing twin of ByteReader. Values come from our own code, so a value
 * that does not fit its field is a bug (assert).
 *
 * Invariant: bytes [0, length) are written; `take()` and `handOff()` hand them off and never
 * touch that memory again, so a sink may keep the returned array (until it gives the memory
 * back to whoever supplied it, for `handOff`).
 */
import assert from "node:assert/strict";
import type { ByteOrder } from "./byte-reader.ts";

const TWO_POW_32 = 0x1_0000_0000;

export class ByteWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;
  readonly #initialCapacity: number;
  readonly #littleEndian: boolean;

  /** `initial`: a capacity in bytes, or a buffer to write into first (e.g. from a pool). */
  constructor(initial: number | Uint8Array = 4096, order: ByteOrder = "big-endian") {
    this.#littleEndian = order === "little-endian";
    const capacity = typeof initial === "number" ? initial : initial.byteLength;
    assert(Number.isInteger(capacity) && capacity > 0, "capacity > 0");
    this.#initialCapacity = capacity;
    this.#buf = typeof initial === "number" ? new Uint8Array(capacity) : initial;
    this.#view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
  }

  /** The memory written into now: growing replaces it, handOff and take hand it off. */
  get buffer(): Uint8Array {
    return this.#buf;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  /** Makes room for n more bytes and returns where they go. */
  #reserve(n: number): number {
    const start = this.#len;
    const need = start + n;
    if (need > this.#buf.byteLength) {
      let capacity = this.#buf.byteLength * 2;
      while (capacity < need) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.#buf.subarray(0, start));
      this.#buf = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#len = need;
    return start;
  }

  u8(value: number): this {
    assert(value >= 0 && value <= 0xff && Number.isInteger(value), "u8 in range");
    // Reserve first: growing replaces #view.
    const at = this.#reserve(1);
    this.#view.setUint8(at, value);
    return this;
  }

  u16(value: number): this {
    assert(value >= 0 && value <= 0xffff && Number.isInteger(value), "u16 in range");
    // Reserve first: growing replaces #view.
    const at = this.#reserve(2);
    this.#view.setUint16(at, value, this.#littleEndian);
    return this;
  }

  u32(value: number): this {
    assert(value >= 0 && value <= 0xffff_ffff && Number.isInteger(value), "u32 in range");
    // Reserve first: growing replaces #view.
    const at = this.#reserve(4);
    this.#view.setUint32(at, value, this.#littleEndian);
    return this;
  }

  /** A u64 from a bigint, or from a non-negative safe integer. */
  u64(value: bigint | number): this {
    const at = this.#reserve(8);
    const le = this.#littleEndian;
    if (typeof value === "bigint") {
      assert(value >= 0n && value < 1n << 64n, "u64 in range");
      this.#view.setBigUint64(at, value, le);
      return this;
    }
    assert(Number.isSafeInteger(value) && value >= 0, "u64 is a non-negative safe integer");
    this.#view.setUint32(le ? at + 4 : at, Math.floor(value / TWO_POW_32), le);
    this.#view.setUint32(le ? at : at + 4, value % TWO_POW_32, le);
    return this;
  }

  /** n zero bytes: reserved fields, written as zero in every version that has them. */
  reserved(n: number): this {
    const at = this.#reserve(n);
    this.#buf.fill(0, at, at + n);
    return this;
  }

  bytes(data: Uint8Array): this {
    const at = this.#reserve(data.byteLength);
    this.#buf.set(data, at);
    return this;
  }

  /** A string as one byte per char (the inverse of ByteReader.latin1). */
  latin1(text: string): this {
    const at = this.#reserve(text.length);
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      assert(code <= 0xff, "latin1 text has only chars below 256");
      this.#view.setUint8(at + i, code);
    }
    return this;
  }

  /** A view of the bytes written; valid until the next write. */
  view(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }

  /**
   * Hands the written bytes off (a view of the current buffer, which the caller now owns) and
   * continues, empty, in `next`: a writer with a buffer pool takes a pooled buffer instead of
   * allocating one per batch.
   */
  handOff(next: Uint8Array): Uint8Array {
    assert(
      next.byteLength > 0 && next.buffer !== this.#buf.buffer,
      "a different, non-empty buffer",
    );
    const out = this.#buf.subarray(0, this.#len);
    this.#buf = next;
    this.#view = new DataView(next.buffer, next.byteOffset, next.byteLength);
    this.#len = 0;
    return out;
  }

  /**
   * Hands off exactly `sizeBytes` written bytes: for fixed-size headers and table entries,
   * where writing fewer or more fields than the layout has is our bug.
   */
  takeExactly(sizeBytes: number): Uint8Array {
    assert.equal(this.#len, sizeBytes, "the fields written fill the fixed-size record");
    return this.take();
  }

  /** Hands the written bytes off (the caller owns them) and starts an empty buffer. */
  take(): Uint8Array {
    const out = this.#buf.subarray(0, this.#len);
    this.#buf = new Uint8Array(this.#initialCapacity);
    this.#view = new DataView(this.#buf.buffer);
    this.#len = 0;
    return out;
  }
}

/** A string as one byte per char. */
export function latin1Encode(text: string): Uint8Array {
  return new ByteWriter(Math.max(1, text.length)).latin1(text).take();
}
