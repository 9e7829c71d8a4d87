/**
 * Appends chunks to chunks.pack (docs/format.md §4) with large sequential writes. Two buffers of
 * PACK_WRITE_BUFFER_BYTES alternate: one fills while the other is written, so compression
 * overlaps the disk. When both are busy, `append` returns a Promise (backpressure). Every
 * PACK_SYNC_AHEAD_BYTES written, an fsync starts in the background, so the kernel writes the
 * pack back while chunks are still being made and the final fsync has little left to do.
 *
 * Invariants: at most two buffers exist, so memory stays bounded; the caller never appends while
 * a returned Promise is pending (asserted); a failed write is kept in `failure` and rethrown by
 * every later call, and no write Promise ever rejects unobserved.
 */
import assert from "node:assert/strict";
import {
  CHUNK_PAGES_MAX,
  PACK_SYNC_AHEAD_BYTES,
  PACK_WRITE_BUFFER_BYTES,
  PAGE_SIZE_BYTES,
} from "../../limits.ts";
import { encodePackHeader } from "../format/pack-header.ts";
import type { StoreIo, WritableFile } from "../store/store-io.ts";
import { writeFully } from "../store/store-io.ts";

const CHUNK_BYTES_MAX = CHUNK_PAGES_MAX * PAGE_SIZE_BYTES;

export class PackWriter {
  readonly #file: WritableFile;
  readonly #buffers = [
    Buffer.alloc(PACK_WRITE_BUFFER_BYTES),
    Buffer.alloc(PACK_WRITE_BUFFER_BYTES),
  ];
  #current = 0;
  #fill = 0;
  /** File offset of the current buffer's first byte. */
  #position = 0;
  #inflight: Promise<void> | null = null;
  /** A background fsync in progress (never rejects), and the file offset it started at. */
  #syncing: Promise<void> | null = null;
  #syncedTo = 0;
  #blocked = false;
  #failure: unknown = null;

  private constructor(file: WritableFile) {
    this.#file = file;
  }

  static async create(io: StoreIo, path: string): Promise<PackWriter> {
    const pack = new PackWriter(await io.createFile(path));
    pack.#copy(encodePackHeader());
    return pack;
  }

  /** Bytes appended so far, header included: the offset the next chunk gets. */
  get bytes(): number {
    return this.#position + this.#fill;
  }

  /** The first write error, if any. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Appends a stored chunk; returns its offset, and a Promise when the caller must wait. */
  append(stored: Uint8Array): { offset: number; wait: Promise<void> | null } {
    assert(!this.#blocked, "append waits for the previous backpressure Promise");
    assert(stored.byteLength <= CHUNK_BYTES_MAX, "a stored chunk is at most its raw size");
    if (this.#failure !== null) throw this.#failure;
    const offset = this.bytes;
    this.#copy(stored);
    if (PACK_WRITE_BUFFER_BYTES - this.#fill >= CHUNK_BYTES_MAX) return { offset, wait: null };
    if (this.#inflight === null) {
      this.#startWrite();
      return { offset, wait: null };
    }
    this.#blocked = true;
    return { offset, wait: this.#waitThenWrite() };
  }

  /** Writes what is buffered, fsyncs and closes. Throws the first write error. */
  async finish(): Promise<number> {
    assert(!this.#blocked, "finish waits for the previous backpressure Promise");
    await this.#inflight;
    if (this.#failure !== null) throw this.#failure;
    this.#startWrite();
    await this.#inflight;
    await this.#syncing;
    if (this.#failure !== null) throw this.#failure;
    await this.#file.sync();
    await this.#file.close();
    return this.#position;
  }

  /** Waits for a write in flight, then closes; for abort paths, so it never throws. */
  async discard(): Promise<void> {
    await this.#inflight;
    await this.#syncing;
    // The checkpoint is being thrown away and its directory removed next: a close error
    // (typically the same EIO/ENOSPC that caused the abort) adds nothing for the caller.
    await this.#file.close().catch(() => undefined);
  }

  #copy(bytes: Uint8Array): void {
    const buf = this.#buffers[this.#current];
    assert(buf !== undefined && this.#fill + bytes.byteLength <= buf.byteLength, "room in buffer");
    buf.set(bytes, this.#fill);
    this.#fill += bytes.byteLength;
  }

  async #waitThenWrite(): Promise<void> {
    await this.#inflight;
    this.#blocked = false;
    if (this.#failure !== null) throw this.#failure;
    this.#startWrite();
  }

  /** Starts a background fsync once PACK_SYNC_AHEAD_BYTES were written since the last one. */
  #syncAhead(): void {
    if (this.#syncing !== null || this.#position - this.#syncedTo < PACK_SYNC_AHEAD_BYTES) return;
    this.#syncedTo = this.#position;
    this.#syncing = this.#file.sync().then(
      () => {
        this.#syncing = null;
      },
      (error: unknown) => {
        this.#failure ??= error;
        this.#syncing = null;
      },
    );
  }

  /** Starts writing the current buffer and switches to the other one. Never rejects. */
  #startWrite(): void {
    assert(this.#inflight === null, "one write in flight at a time");
    const buf = this.#buffers[this.#current];
    assert(buf !== undefined, "buffer exists");
    const length = this.#fill;
    const position = this.#position;
    this.#position += length;
    this.#fill = 0;
    this.#current ^= 1;
    this.#inflight = writeFully(this.#file, buf, length, position).then(
      () => {
        this.#inflight = null;
        this.#syncAhead();
      },
      (error: unknown) => {
        this.#failure ??= error;
        this.#inflight = null;
      },
    );
  }
}
