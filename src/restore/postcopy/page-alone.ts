/**
 * Reads one requested page alone from the store, for a page request whose chunk is not decoded
 * yet (ADR 0020): when the chunk is stored raw (codec none: its pages are incompressible, so
 * page `slot` is the 4 KiB at `offset + slot × 4096`) and the store's digest cache gives the
 * chunk trusted page digests (ADR 0019), the page is read with one 4 KiB pread on this thread
 * and sent once its SHA-256 matches its digest. The vCPU then waits for ~10 µs of page cache
 * instead of a 256 KiB read queued in libuv's pool behind the fill's reads, and a page hash.
 *
 * Invariants: a page comes back only if it matched its trusted digest (a list that hashes to
 * the chunk hash the manifest protects), so it is as checked as a page of a verified chunk; any
 * other outcome (no trusted list, a compressed or disk chunk, a short or failed read, a page
 * that does not match) is null, and the request waits for its chunk's load as before, which
 * checks the chunk and fails the restore with the reader's error if it is corrupt. The bytes
 * returned are one scratch buffer: copied by the caller before the next read. Reads block
 * this thread, so they stop after RESTORE_SLOW_ALONE_READS_MAX slow ones in a row and never
 * run under the emulated slow store, which models a store whose reads must be asynchronous.
 */
import { readSync } from "node:fs";
import {
  type CheckpointReader,
  CodecId,
  type PageDigests,
  storeReadThrottle,
} from "../../checkpoint/index.ts";
import {
  PAGE_SIZE_BYTES,
  RESTORE_ALONE_READ_SLOW_MS,
  RESTORE_SLOW_ALONE_READS_MAX,
} from "../../limits.ts";

/** What reading alone needs of a checkpoint reader. */
export type AloneReader = Pick<CheckpointReader, "decodeJobOf">;
/** What reading alone needs of the trusted page digests. */
export type AloneDigests = Pick<PageDigests, "forChunk" | "matches">;
/** Reads into `into` at `position` of `fd`, synchronously; returns the bytes read. */
export type ReadSyncAt = (fd: number, into: Uint8Array, position: number) => number;

export class PageAlone {
  readonly #reader: AloneReader;
  readonly #readAt: ReadSyncAt;
  readonly #now: () => number;
  readonly #page = new Uint8Array(PAGE_SIZE_BYTES);
  #digests: AloneDigests | null = null;
  #slowReads = 0; // in a row
  #closed = false;

  constructor(
    reader: AloneReader,
    opts: { readonly readAt?: ReadSyncAt; readonly now?: () => number } = {},
  ) {
    this.#reader = reader;
    this.#readAt = opts.readAt ?? readSyncAt;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** From now on pages of chunks that `digests` trusts can be read alone. */
  useDigests(digests: AloneDigests): void {
    this.#digests = digests;
  }

  /** Whether pages are still read alone (false after slow reads, or once closed). */
  get active(): boolean {
    return !this.#closed && this.#slowReads < RESTORE_SLOW_ALONE_READS_MAX;
  }

  /** No read after this: the reader's files are about to close. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Page `slot` of pack chunk `chunk`, read alone and matched against its trusted digest, or
   * null (see the invariants above). Valid until the next call.
   */
  read(chunk: number, slot: number): Uint8Array | null {
    const digests = this.#digests;
    if (digests === null || !this.active || storeReadThrottle() !== null) return null;
    const trusted = digests.forChunk(chunk);
    if (trusted === null) return null;
    const job = this.#reader.decodeJobOf(chunk);
    if (job === null || job.codec !== CodecId.none || slot < 0 || slot >= job.pageCount)
      return null;
    const t0 = this.#now();
    let n: number;
    try {
      n = this.#readAt(job.fd, this.#page, job.offset + slot * PAGE_SIZE_BYTES);
    } catch {
      return null; // the chunk's own load reads it again and reports the error
    } finally {
      this.#slowReads = this.#now() - t0 > RESTORE_ALONE_READ_SLOW_MS ? this.#slowReads + 1 : 0;
    }
    if (n !== PAGE_SIZE_BYTES || !digests.matches(this.#page, trusted, slot)) return null;
    return this.#page;
  }
}

function readSyncAt(fd: number, into: Uint8Array, position: number): number {
  let done = 0;
  while (done < into.byteLength) {
    const n = readSync(fd, into, done, into.byteLength - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
