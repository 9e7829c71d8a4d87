/**
 * Little-endian byte cursors for the checkpoint's binary files (src/bytes/ speaks QEMU's
 * big-endian). LeReader is the one place that bounds-checks checkpoint headers and tables:
 * every read either succeeds whole or throws DecodeError with the byte offset.
 * LeWriter fills a fixed-size buffer; a value that does not fit is our bug (assert).
 */
import assert from "node:assert/strict";
import { DecodeError } from "../errors.ts";

export class LeReader {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #pos = 0;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.bytes.byteLength - this.#pos;
  }

  /** The only bounds check. */
  #take(n: number): number {
    if (n > this.remaining) throw new DecodeError(`Cannot read ${n} bytes: input ends`, this.#pos);
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }

  u16(): number {
    return this.#view.getUint16(this.#take(2), true);
  }

  u32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }

  /** A u64 that must fit a JS number exactly. */
  u64(what: string): number {
    const at = this.#take(8);
    const v = this.#view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      throw new DecodeError(`${what}: ${v} is too large`, at);
    return Number(v);
  }

  /** A zero-copy view of the next n bytes. */
  slice(n: number): Uint8Array {
    const at = this.#take(n);
    return this.bytes.subarray(at, at + n);
  }

  /** Reserved bytes: they must be zero in this version. */
  reserved(n: number): void {
    const at = this.#pos;
    for (const b of this.slice(n)) {
      if (b !== 0) throw new DecodeError(`Reserved bytes are not zero`, at);
    }
  }

  /** A 4-byte ASCII magic. */
  magic(): string {
    return Buffer.from(this.slice(4)).toString("latin1");
  }
}

export class LeWriter {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #pos = 0;

  constructor(sizeBytes: number) {
    this.bytes = new Uint8Array(sizeBytes);
    this.#view = new DataView(this.bytes.buffer);
  }

  get offset(): number {
    return this.#pos;
  }

  #take(n: number): number {
    assert(this.#pos + n <= this.bytes.byteLength, "LeWriter stays inside its buffer");
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  u8(v: number): this {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xff, "u8 in range");
    this.#view.setUint8(this.#take(1), v);
    return this;
  }

  u16(v: number): this {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xffff, "u16 in range");
    this.#view.setUint16(this.#take(2), v, true);
    return this;
  }

  u32(v: number): this {
    assert(Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff, "u32 in range");
    this.#view.setUint32(this.#take(4), v, true);
    return this;
  }

  u64(v: number): this {
    assert(Number.isSafeInteger(v) && v >= 0, "u64 is a safe non-negative integer");
    this.#view.setBigUint64(this.#take(8), BigInt(v), true);
    return this;
  }

  raw(b: Uint8Array): this {
    this.bytes.set(b, this.#take(b.byteLength));
    return this;
  }

  magic(m: string): this {
    assert(m.length === 4, "a magic is 4 ASCII bytes");
    return this.raw(Buffer.from(m, "latin1"));
  }

  /** Zeroed reserved bytes (the buffer starts zeroed). */
  reserved(n: number): this {
    this.#take(n);
    return this;
  }
}
