/**
 * The chunk loader's buffers (chunk-loader.ts): 256 KiB chunk buffers, each holding one decoded
 * chunk's pages while the cache holds the chunk, and buffers for chunks' stored bytes between
 * their read and their decode. A first touch costs 5–15 µs a page on the bench hosts (a chunk
 * buffer 0.3–1.4 ms), so buffers are reused: the cache gives a chunk's buffer back when it evicts
 * it (recycle), and a decode gives back the buffer it did not keep.
 *
 * Invariants: only buffers this pool handed out or adopted (own) are taken back by recycle, so a
 * page given to the cache is never overwritten while the cache holds it; at most
 * RESTORE_CHUNK_BUFFERS_KEPT chunk buffers and `storedKept` stored-bytes buffers are kept. The
 * last RESTORE_CHUNK_BUFFERS_HERE chunk buffers are for decodes on the page server's thread (a
 * request's chunk, the prelude's), and the warmer keeps that many touched until close (ADR
 * 0029): a worker's decode takes a fresh buffer instead, which its thread then touches. No
 * buffer is zero-filled: each user writes the bytes it reads first.
 */
import {
  CHUNK_PAGES_MAX,
  PAGE_SIZE_BYTES,
  RESTORE_CHUNK_BUFFERS_HERE,
  RESTORE_CHUNK_BUFFERS_KEPT,
} from "../../limits.ts";
import { BufferWarmer } from "./buffer-warmer.ts";

const CHUNK_BYTES_MAX = CHUNK_PAGES_MAX * PAGE_SIZE_BYTES;

export class ChunkBuffers {
  /** Chunk buffers the cache has evicted (or the warmer touched), for the next loads. */
  readonly #free: ArrayBuffer[] = [];
  /** Stored-bytes buffers back from decodes, for the next reads. */
  readonly #freeStored: ArrayBuffer[] = [];
  /** Buffers handed out as a chunk's: only those are recycled. */
  readonly #own = new WeakSet<ArrayBuffer>();
  readonly #storedKept: number;
  readonly #warmer: BufferWarmer;
  #closed = false;

  /** `storedKept`: stored-bytes buffers kept (the reads in flight and the decodes). */
  constructor(storedKept: number) {
    this.#storedKept = storedKept;
    const wanted = () => !this.#closed && this.#free.length < RESTORE_CHUNK_BUFFERS_HERE;
    this.#warmer = new BufferWarmer(CHUNK_BYTES_MAX, wanted, (b) => this.keep(b));
    this.#warmer.poke();
  }

  /** A chunk buffer for a decode on this thread: a kept one if any (touched), else a new one. */
  forHere(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#take() ?? fresh());
  }

  /** A chunk buffer for a worker's decode: kept ones beyond those for this thread, else new. */
  forWorker(): ArrayBuffer {
    return (
      (this.#free.length > RESTORE_CHUNK_BUFFERS_HERE ? this.#free.pop() : undefined) ?? fresh()
    );
  }

  /** A buffer for a chunk's stored bytes (up to a chunk's bytes; the caller checks). */
  forStored(): ArrayBuffer {
    // A chunk buffer will do: a raw chunk decoded here keeps its stored buffer (adopt), so the
    // two pools trade buffers.
    return this.#freeStored.pop() ?? this.#take() ?? fresh();
  }

  /** `buffer` (a worker's reply) holds a chunk's pages: recycle takes it back. */
  own(buffer: ArrayBuffer): void {
    this.#own.add(buffer);
  }

  /**
   * After a decode here whose pages live in `pagesBuffer`: that buffer (`stored` for a raw
   * chunk, `into` for a compressed one) is the chunk's from now on, given back by recycle()
   * when the cache evicts it; the other goes back to its pool. Never a copy.
   */
  adopt(stored: ArrayBuffer, into: Uint8Array<ArrayBuffer>, pagesBuffer?: ArrayBufferLike): void {
    if (pagesBuffer === stored) this.#own.add(stored);
    else this.keepStored(stored);
    if (pagesBuffer === into.buffer) this.#own.add(into.buffer);
    else this.keep(into.buffer);
  }

  /** `pages` (one chunk's) are no longer referenced: their buffer serves another load. */
  recycle(pages: readonly Uint8Array[]): void {
    const buffer = pages[0]?.buffer;
    if (buffer instanceof ArrayBuffer && this.#own.has(buffer)) this.keep(buffer);
  }

  /** A chunk buffer no page refers to, for the next loads. */
  keep(buffer: ArrayBuffer): void {
    if (this.#free.length < RESTORE_CHUNK_BUFFERS_KEPT) this.#free.push(buffer);
  }

  /** A stored-bytes buffer no longer needed, for the next reads. */
  keepStored(buffer: ArrayBuffer): void {
    if (this.#freeStored.length < this.#storedKept) this.#freeStored.push(buffer);
  }

  /** Nothing more is touched ahead. */
  close(): void {
    this.#closed = true;
    this.#warmer.stop();
  }

  #take(): ArrayBuffer | undefined {
    const buffer = this.#free.pop();
    this.#warmer.poke();
    return buffer;
  }
}

/** Not zero-filled (`new ArrayBuffer` is: ~0.4 ms of this thread for 256 KiB on these hosts). */
function fresh(): ArrayBuffer {
  return Buffer.allocUnsafeSlow(CHUNK_BYTES_MAX).buffer as ArrayBuffer;
}
