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
 * this thread, so they run only while the restore's SyncReads gate is open (sync-reads.ts:
 * not after a few slow reads in a row, never under the emulated slow store).
 */
import { type CheckpointReader, CodecId, type PageDigests } from "../../checkpoint/index.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { SyncReads } from "./sync-reads.ts";

/** What reading alone needs of a checkpoint reader. */
export type AloneReader = Pick<CheckpointReader, "decodeJobOf">;
/** What reading alone needs of the trusted page digests. */
export type AloneDigests = Pick<PageDigests, "forChunk" | "matches">;

export class PageAlone {
  readonly #reader: AloneReader;
  readonly #reads: SyncReads;
  readonly #page = new Uint8Array(PAGE_SIZE_BYTES);
  #digests: AloneDigests | null = null;

  /** `reads`: the restore's gate for reads on this thread, shared with the chunk loader. */
  constructor(reader: AloneReader, reads: SyncReads = new SyncReads()) {
    this.#reader = reader;
    this.#reads = reads;
  }

  /** From now on pages of chunks that `digests` trusts can be read alone. */
  useDigests(digests: AloneDigests): void {
    this.#digests = digests;
  }

  /**
   * Page `slot` of pack chunk `chunk`, read alone and matched against its trusted digest, or
   * null (see the invariants above). Valid until the next call.
   */
  read(chunk: number, slot: number): Uint8Array | null {
    const digests = this.#digests;
    if (digests === null || !this.#reads.open) return null;
    const trusted = digests.forChunk(chunk);
    if (trusted === null) return null;
    const job = this.#reader.decodeJobOf(chunk);
    if (job === null || job.codec !== CodecId.none || slot < 0 || slot >= job.pageCount)
      return null;
    let n: number;
    try {
      n = this.#reads.read(job.fd, this.#page, job.offset + slot * PAGE_SIZE_BYTES);
    } catch {
      return null; // the chunk's own load reads it again and reports the error
    }
    if (n !== PAGE_SIZE_BYTES || !digests.matches(this.#page, trusted, slot)) return null;
    return this.#page;
  }
}
