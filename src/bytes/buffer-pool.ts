/**
 * BufferPool: fixed-size byte buffers reused instead of allocated, for writers whose sink says
 * when it has finished with a buffer (a socket write's callback). A page server allocating a
 * fresh 256 KiB batch buffer per write spends more time in the garbage collector than in the
 * kernel; a pool keeps a handful of buffers circulating.
 *
 * Invariants: a buffer is handed out again only after it was released, and only once per
 * release (released buffers are tracked by identity; releasing a buffer twice, or one this pool
 * did not hand out, is a bug and asserts). At most `keepMax` free buffers are kept; beyond that
 * a released buffer is left to the garbage collector, so a burst does not pin memory forever.
 */
import assert from "node:assert/strict";

export interface BufferPoolStats {
  /** Buffers the pool created (a miss: no free buffer when one was asked for). */
  readonly allocated: number;
  /** Buffers handed out again after a release. */
  readonly reused: number;
  /** Handed out and not released yet. */
  readonly outstanding: number;
}

export class BufferPool {
  readonly bufferBytes: number;
  readonly #keepMax: number;
  readonly #free: Uint8Array[] = [];
  /** Outstanding buffers by their memory: a release may come back as a view of one. */
  readonly #out = new Map<ArrayBufferLike, Uint8Array>();
  #allocated = 0;
  #reused = 0;

  constructor(bufferBytes: number, keepMax: number) {
    assert(Number.isSafeInteger(bufferBytes) && bufferBytes > 0, "a pooled buffer has bytes");
    assert(Number.isSafeInteger(keepMax) && keepMax >= 0, "a bound on free buffers");
    this.bufferBytes = bufferBytes;
    this.#keepMax = keepMax;
  }

  get stats(): BufferPoolStats {
    return { allocated: this.#allocated, reused: this.#reused, outstanding: this.#out.size };
  }

  /** A buffer of `bufferBytes` no one else holds; its contents are garbage. */
  acquire(): Uint8Array {
    let buffer = this.#free.pop();
    if (buffer === undefined) {
      // allocUnsafeSlow: its own memory (never a slice of Node's shared pool), not zero-filled.
      buffer = new Uint8Array(Buffer.allocUnsafeSlow(this.bufferBytes).buffer);
      this.#allocated += 1;
    } else {
      this.#reused += 1;
    }
    assert(!this.#out.has(buffer.buffer), "a pooled buffer is handed out once at a time");
    this.#out.set(buffer.buffer, buffer);
    return buffer;
  }

  /** Whether `bytes` (a buffer or a view of one) is handed out and not released yet. */
  holds(bytes: Uint8Array): boolean {
    return this.#out.has(bytes.buffer);
  }

  /** Gives back a buffer from acquire() (or any view of it) once nothing references it. */
  release(bytes: Uint8Array): void {
    const buffer = this.#out.get(bytes.buffer);
    assert(buffer !== undefined, "release a pooled buffer once, after acquiring it");
    this.#out.delete(bytes.buffer);
    if (this.#free.length < this.#keepMax) this.#free.push(buffer);
  }
}
