/**
 * ByteSource: turns an `AsyncIterable<Uint8Array>` (a net.Socket, an fs read stream, an array
 * of chunks) into "exactly n bytes" reads for streaming parsers.
 *
 * - Fast path: `take(n)` is synchronous. When n bytes are buffered it returns the ByteReader
 *   over the current chunk, positioned at the next byte; a 4 KiB page record costs no await
 *   and no copy. The caller must consume exactly n bytes from it (checked on the next call).
 * - Slow path: `read(n, what)` awaits more chunks. It copies only when a read straddles
 *   chunks.
 * - "Need more" (`take` returns null) is kept apart from "input ended": `read` throws a
 *   DecodeError naming what was being read and the offset where it started.
 *
 * Memory: at most the current chunk plus one straddling read, never the whole stream.
 * Offsets are absolute, counted from the first byte of the input.
 */
import assert from "node:assert/strict";
import { DecodeError } from "../errors.ts";
import { BYTE_SOURCE_READ_BYTES_MAX } from "../limits.ts";
import { ByteReader } from "./byte-reader.ts";

export class ByteSource {
  readonly #iterator: AsyncIterator<Uint8Array>;
  #reader = new ByteReader(new Uint8Array(0), 0);
  #ended = false;
  /** The last reader handed out and the offset it must be consumed up to. */
  #lent: ByteReader | null = null;
  #lentEnd = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  /** Absolute offset of the next unread byte. */
  get offset(): number {
    return this.#reader.offset;
  }

  /** Bytes readable now without awaiting. */
  get buffered(): number {
    return this.#reader.remaining;
  }

  /**
   * A reader with at least n readable bytes, without awaiting, or null when fewer are
   * buffered ("need more": not an error). Consume exactly n bytes from it.
   */
  take(n: number): ByteReader | null {
    this.#checkLent();
    if (this.#reader.remaining < n) return null;
    return this.#lend(this.#reader, n);
  }

  /**
   * A reader with at least n readable bytes, awaiting input as needed. Consume exactly n.
   * Throws DecodeError if the input ends first; `what` names the item in that error.
   */
  async read(n: number, what: string): Promise<ByteReader> {
    const fast = this.take(n);
    if (fast !== null) return fast;
    assert(n <= BYTE_SOURCE_READ_BYTES_MAX, "callers bound a read before making it");
    const start = this.offset;
    if (this.#reader.remaining === 0) {
      if (!(await this.#pull())) throw ends(what, start, 0, n);
      if (this.#reader.remaining >= n) return this.#lend(this.#reader, n);
    }
    // The read straddles chunks: gather exactly n bytes into a fresh array. Tiny chunks
    // (a byte each, in tests) make this loop hot: one await per chunk, no more.
    const out = new Uint8Array(n);
    let have = 0;
    for (;;) {
      const k = Math.min(n - have, this.#reader.remaining);
      out.set(this.#reader.slice(k), have);
      have += k;
      if (have === n) break;
      let accepted = this.#ended ? false : this.#accept(await this.#iterator.next());
      while (accepted === null) accepted = this.#accept(await this.#iterator.next());
      if (!accepted) throw ends(what, start, have, n);
    }
    return this.#lend(new ByteReader(out, start), n);
  }

  /** The next byte without consuming it, or null at the end of the input. */
  async peekU8(): Promise<number | null> {
    this.#checkLent();
    if (this.#reader.remaining === 0 && !(await this.#pull())) return null;
    return this.#reader.peekU8();
  }

  /** True when nothing is buffered and the input has ended. */
  async atEnd(): Promise<boolean> {
    return (await this.peekU8()) === null;
  }

  /**
   * The next bytes not yet read, as they arrive (at most one chunk); null at the end. For
   * consumers that take the rest of the input whole. Each view is the caller's to keep.
   */
  async nextChunk(): Promise<Uint8Array | null> {
    this.#checkLent();
    this.#lent = null;
    if (this.#reader.remaining === 0 && !(await this.#pull())) return null;
    return this.#reader.slice(this.#reader.remaining);
  }

  /** Stops reading the input early (destroys a Node stream); safe to call twice. */
  async close(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    await this.#iterator.return?.();
  }

  #lend(reader: ByteReader, n: number): ByteReader {
    this.#lent = reader;
    this.#lentEnd = reader.offset + n;
    return reader;
  }

  #checkLent(): void {
    // Hot path: a plain comparison, not assert.equal.
    if (this.#lent !== null && this.#lent.offset !== this.#lentEnd) {
      assert.fail(`caller consumed ${this.#lent.offset - this.#lentEnd} bytes more than it took`);
    }
  }

  /** Replaces the exhausted current chunk with the next non-empty one; false at the end. */
  async #pull(): Promise<boolean> {
    assert.equal(this.#reader.remaining, 0, "pull only when the current chunk is used up");
    if (this.#ended) return false;
    let accepted = this.#accept(await this.#iterator.next());
    while (accepted === null) accepted = this.#accept(await this.#iterator.next());
    return accepted;
  }

  /** Takes one iterator result: true = a new chunk, false = the end, null = an empty chunk. */
  #accept(next: IteratorResult<Uint8Array>): boolean | null {
    if (next.done === true) {
      this.#ended = true;
      return false;
    }
    const chunk: unknown = next.value;
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError("Cannot read the input: chunks must be Uint8Array (no text encoding)");
    }
    if (chunk.byteLength === 0) return null;
    this.#reader = new ByteReader(chunk, this.#reader.offset);
    return true;
  }
}

function ends(what: string, start: number, have: number, n: number): DecodeError {
  return new DecodeError(
    `Truncated input: it ends inside ${what} after ${have} of ${n} bytes ` +
      `(at byte ${start + have})`,
    start,
  );
}
