/**
 * Reads on the page server's own thread, for a page request only (ADR 0020, 0029): a page read
 * alone, or the stored bytes of a requested page's chunk. From the page cache such a read takes
 * ~10–60 µs; the same read through libuv's pool costs two wake-ups of threads that share two
 * cores with QEMU's vCPU and the fill's decoders, and took 0.3–4.8 ms in a lazy restore
 * (docs/bench.md, "Requests read their chunk on the page server's thread").
 *
 * Invariants: one gate per restore, shared by every kind of read it allows, so a slow store
 * is noticed by whichever read meets it; once RESTORE_SLOW_ALONE_READS_MAX reads in a row took
 * longer than RESTORE_ALONE_READ_SLOW_MS (a disk, a network store) the gate stays shut and
 * requests read asynchronously, as the fill does. It is shut under the emulated slow store
 * (read-throttle.ts), which models a store whose reads must be asynchronous, and after close().
 */
import { readSync } from "node:fs";
import { storeReadThrottle } from "../../checkpoint/index.ts";
import { RESTORE_ALONE_READ_SLOW_MS, RESTORE_SLOW_ALONE_READS_MAX } from "../../limits.ts";

/** Reads into `into` at `position` of `fd`, synchronously; returns the bytes read. */
export type ReadSyncAt = (fd: number, into: Uint8Array, position: number) => number;

export class SyncReads {
  readonly #readAt: ReadSyncAt;
  readonly #now: () => number;
  #slowReads = 0; // in a row
  #closed = false;

  constructor(opts: { readonly readAt?: ReadSyncAt; readonly now?: () => number } = {}) {
    this.#readAt = opts.readAt ?? readFullyAt;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Whether a request may read on this thread now. */
  get open(): boolean {
    return (
      !this.#closed &&
      this.#slowReads < RESTORE_SLOW_ALONE_READS_MAX &&
      storeReadThrottle() === null
    );
  }

  /** No read after this: the reader's files are about to close. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Fills `into` from `position` of `fd` (fewer bytes only at the end of the file) and returns
   * the count; timed, so slow reads shut the gate. Throws the read's error.
   */
  read(fd: number, into: Uint8Array, position: number): number {
    const t0 = this.#now();
    try {
      return this.#readAt(fd, into, position);
    } finally {
      this.#slowReads = this.#now() - t0 > RESTORE_ALONE_READ_SLOW_MS ? this.#slowReads + 1 : 0;
    }
  }
}

function readFullyAt(fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.byteLength) {
    const n = readSync(fd, into, done, into.byteLength - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
