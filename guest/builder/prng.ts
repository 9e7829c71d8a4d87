/**
 * A small seeded PRNG (sfc32, seeded through splitmix32) for the data disk's content.
 * Not cryptographic; chosen because it is fast on 32-bit integers and has no bad seeds.
 */
export class Sfc32 {
  #a: number;
  #b: number;
  #c: number;
  #d = 1;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Next uniformly distributed 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** Uniform integer in [0, n) for n <= 2^32 (the tiny modulo bias is irrelevant here). */
  below(n: number): number {
    return this.u32() % n;
  }

  /** Fills bytes with PRNG output, one draw per 4 bytes (little-endian), one per tail byte. */
  fill(bytes: Uint8Array): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const whole = bytes.byteLength - (bytes.byteLength % 4);
    for (let i = 0; i < whole; i += 4) view.setUint32(i, this.u32(), true);
    for (let i = whole; i < bytes.byteLength; i++) view.setUint8(i, this.u32() & 0xff);
  }
}
