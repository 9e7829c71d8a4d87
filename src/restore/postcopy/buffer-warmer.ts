/**
 * Touches fresh chunk buffers ahead of the decodes on the page server's thread (ADR 0029), one
 * slice of pages per turn of the event loop, so that a request's chunk is decompressed into
 * memory already mapped. On the bench hosts the first touch of a page costs 5–15 µs (a 256 KiB
 * buffer 0.3–1.4 ms), and in a lazy restore's first ~0.4 s, before the cache evicts anything,
 * every decode here needs a new buffer. Writing from this thread is the only way that counts:
 * the kernel filling a buffer (a read of /dev/zero) did not map it for the process's own
 * accesses here (docs/bench.md, "Requests read their chunk on the page server's thread").
 *
 * Invariants: a slice runs only while `wanted()` says more buffers are wanted, and in its own
 * setImmediate callback: the event loop's poll phase, where a page request is read, comes
 * between two slices, so a request waits for at most one slice (RESTORE_WARM_SLICE_PAGES).
 * Nothing is scheduled once stopped, or while nothing is wanted: an idle server stays idle.
 */
import { PAGE_SIZE_BYTES, RESTORE_WARM_SLICE_PAGES } from "../../limits.ts";

export class BufferWarmer {
  readonly #bytes: number;
  readonly #wanted: () => boolean;
  readonly #ready: (buffer: ArrayBuffer) => void;
  readonly #slicePages: number;
  #current: Uint8Array<ArrayBuffer> | null = null;
  #at = 0;
  #scheduled = false;
  #stopped = false;

  /**
   * Buffers of `bytes` (a multiple of 4 KiB), each given to `ready` once every page of it was
   * written, while `wanted()` is true.
   */
  constructor(
    bytes: number,
    wanted: () => boolean,
    ready: (buffer: ArrayBuffer) => void,
    slicePages: number = RESTORE_WARM_SLICE_PAGES,
  ) {
    this.#bytes = bytes;
    this.#wanted = wanted;
    this.#ready = ready;
    this.#slicePages = slicePages;
  }

  /** Call when a buffer was taken (or at the start): warms more if wanted. */
  poke(): void {
    if (this.#scheduled || this.#stopped || !this.#wanted()) return;
    this.#scheduled = true;
    setImmediate(() => this.#slice());
  }

  /** No slice after this. */
  stop(): void {
    this.#stopped = true;
    this.#current = null;
  }

  #slice(): void {
    this.#scheduled = false;
    if (this.#stopped || !this.#wanted()) return;
    const buffer = this.#current ?? new Uint8Array(Buffer.allocUnsafeSlow(this.#bytes).buffer);
    this.#current = buffer;
    const end = Math.min(this.#bytes, this.#at + this.#slicePages * PAGE_SIZE_BYTES);
    for (let at = this.#at; at < end; at += PAGE_SIZE_BYTES) buffer[at] = 0;
    this.#at = end;
    if (end === this.#bytes) {
      this.#current = null;
      this.#at = 0;
      this.#ready(buffer.buffer);
    }
    this.poke();
  }
}
