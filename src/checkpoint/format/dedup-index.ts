/**
 * DedupIndex: page content hash (SHA-256, 32 bytes) → stored slot, for identical pages within
 * one checkpoint. An open-addressing table over typed arrays, not a Map of strings: it holds
 * tens of millions of pages (a JS Map stops at 2^24 entries) at ~48 bytes each and gives the
 * garbage collector nothing to trace.
 *
 * Invariants: a lookup matches only on all 32 digest bytes (the 4-byte tag is a filter, never a
 * decision); the table is at most half full, so probes always end. Guest memory is
 * attacker-controlled: table positions mix two digest words with per-index random multipliers,
 * so pages ground to share a bucket in one save (hash flooding) do not share it in another.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";

const DIGEST_BYTES = 32;
const DIGEST_WORDS = DIGEST_BYTES / 4;
const INITIAL_ENTRIES = 1 << 12;

export class DedupIndex {
  /** Entry i's digest at words [8i, 8i + 8). */
  #digests = new Uint32Array(INITIAL_ENTRIES * DIGEST_WORDS);
  #values = new Uint32Array(INITIAL_ENTRIES);
  /** Open-addressing slots: entry index + 1, 0 = empty. Size: a power of two ≥ 2 × entries. */
  #table = new Uint32Array(INITIAL_ENTRIES * 2);
  #count = 0;
  /** The digest being looked up, copied to an aligned place so it compares word by word. */
  readonly #probe = new Uint32Array(DIGEST_WORDS);
  readonly #probeBytes = new Uint8Array(this.#probe.buffer);
  readonly #k0 = crypto.randomInt(2 ** 31) * 2 + 1;
  readonly #k1 = crypto.randomInt(2 ** 31) * 2 + 1;

  get size(): number {
    return this.#count;
  }

  /** The value stored for `digest`, or -1. The digest is remembered for a following `add`. */
  get(digest: Uint8Array): number {
    assert(digest.byteLength === DIGEST_BYTES, "a SHA-256 digest");
    this.#probeBytes.set(digest);
    const at = this.#find();
    const entry = this.#table[at] ?? 0;
    return entry === 0 ? -1 : (this.#values[entry - 1] ?? -1);
  }

  /** Adds the digest last passed to `get` (which returned -1) with `value`. */
  addLast(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff, "value is a u32");
    if ((this.#count + 1) * 2 > this.#table.length) this.#grow();
    const at = this.#find();
    assert(this.#table[at] === 0, "addLast follows a get that missed");
    const e = this.#count++;
    this.#digests.set(this.#probe, e * DIGEST_WORDS);
    this.#values[e] = value;
    this.#table[at] = e + 1;
  }

  /** The table slot holding the probe digest, or the empty slot where it would go. */
  #find(): number {
    const mask = this.#table.length - 1;
    const probe = this.#probe;
    const tag = probe[0] ?? 0;
    for (let at = this.#position(tag, probe[1] ?? 0, mask); ; at = (at + 1) & mask) {
      const entry = this.#table[at] ?? 0;
      if (entry === 0) return at;
      const base = (entry - 1) * DIGEST_WORDS;
      if (this.#digests[base] === tag && this.#sameDigest(base)) return at;
    }
  }

  /** Start slot: the high bits of a keyed multiply, which depend on every input bit. */
  #position(word0: number, word1: number, mask: number): number {
    const mixed = (Math.imul(word0, this.#k0) ^ Math.imul(word1, this.#k1)) >>> 0;
    return Math.floor((mixed / 2 ** 32) * (mask + 1));
  }

  #sameDigest(base: number): boolean {
    const d = this.#digests;
    const p = this.#probe;
    for (let w = 1; w < DIGEST_WORDS; w++) if (d[base + w] !== p[w]) return false;
    return true;
  }

  #grow(): void {
    const entries = this.#values.length * 2;
    const digests = new Uint32Array(entries * DIGEST_WORDS);
    digests.set(this.#digests);
    const values = new Uint32Array(entries);
    values.set(this.#values);
    this.#digests = digests;
    this.#values = values;
    const table = new Uint32Array(entries * 2);
    const mask = table.length - 1;
    for (let e = 0; e < this.#count; e++) {
      const base = e * DIGEST_WORDS;
      let at = this.#position(digests[base] ?? 0, digests[base + 1] ?? 0, mask);
      while (table[at] !== 0) at = (at + 1) & mask;
      table[at] = e + 1;
    }
    this.#table = table;
  }
}
