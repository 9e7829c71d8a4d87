/**
 * FNV-1a 64 over bytes, the data disk's checksum (the guest's twin is guest/src/mix.h).
 * Works on 32-bit halves with int32 arithmetic only (no BigInt, no float division): the
 * prime is 2^40 + 0x1b3, so h * prime = h * 0x1b3 + (lo << 40) mod 2^64. lo * 0x1b3 is
 * split into 16-bit partial products to get its carry into the high half.
 */
const PRIME_LOW = 0x1b3;

export class Fnv1a64 {
  #lo = 0x84222325;
  #hi = 0xcbf29ce4;

  /** Feeds more bytes; returns this so calls chain. */
  update(bytes: Uint8Array): this {
    let lo = this.#lo;
    let hi = this.#hi;
    // An indexed loop: for-of over a Uint8Array is ten times slower here (64 MiB per build).
    for (let i = 0; i < bytes.length; i++) {
      lo = (lo ^ (bytes[i] ?? 0)) >>> 0;
      const p0 = (lo & 0xffff) * PRIME_LOW; // < 2^25
      const p1 = (lo >>> 16) * PRIME_LOW; // < 2^25
      const carry = ((p0 >>> 16) + p1) >>> 16;
      hi = (Math.imul(hi, PRIME_LOW) + carry + (lo << 8)) >>> 0;
      lo = (p0 + (p1 << 16)) >>> 0;
    }
    this.#lo = lo;
    this.#hi = hi;
    return this;
  }

  /** 16 lowercase hex digits, as in MANIFEST. */
  hex(): string {
    return this.#hi.toString(16).padStart(8, "0") + this.#lo.toString(16).padStart(8, "0");
  }
}

/** FNV-1a 64 of bytes as 16 hex digits. */
export function fnv1a64Hex(bytes: Uint8Array): string {
  return new Fnv1a64().update(bytes).hex();
}
