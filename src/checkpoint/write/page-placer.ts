/**
 * PagePlacer: gives every page record of a write its page-map entry, with the hashing done on
 * the chunk workers (ADR 0013, "Save"). Data pages are copied into batches of WRITE_BATCH_PAGES
 * that a worker hashes; when a batch's digests come back, its records are placed here in
 * stream order: a zero record becomes a zero entry, a data page a duplicate of a content stored
 * already (this pack, a shared pack, a frozen disk block) or a new slot of the ChunkPacker.
 *
 * Invariants: records take effect in stream order (zero records ride in the batches while data
 * records wait), so a page's last record wins; past WRITE_BATCHES_IN_FLIGHT_MAX batches in
 * flight `data` asks the caller to wait, and placed batches are reused (no allocation per
 * batch); the first failure is kept in `failure` and nothing is placed after it; no Promise
 * made here ever rejects unobserved.
 */
import {
  PAGE_SIZE_BYTES,
  WRITE_BATCH_PAGES,
  WRITE_BATCH_RECORDS_MAX,
  WRITE_BATCHES_IN_FLIGHT_MAX,
} from "../../limits.ts";
import { PAGE_DIGEST_BYTES } from "../format/chunk-hash.ts";
import { zeroEntry } from "../format/format.ts";
import type { ChunkWorkers } from "../read/chunk-workers.ts";
import type { ChunkPacker } from "./chunk-packer.ts";
import type { DiskPages } from "./disk-pages.ts";
import { InOrder } from "./in-order.ts";
import type { SharedPages } from "./shared-pages.ts";

/**
 * Page records gathered for one hashing job, in stream order: `records` holds each record's
 * page-map index and `fills` its kind (-1: the next data page of `pages`; 0..255: a zero
 * record of that fill byte).
 */
interface Batch {
  pages: Uint8Array<ArrayBuffer>;
  readonly records: Uint32Array;
  readonly fills: Int16Array;
  recordCount: number;
  pageCount: number;
}

export interface PlacerInit {
  readonly workers: ChunkWorkers;
  readonly packer: ChunkPacker;
  /** The page map's entries, written as records are placed. */
  readonly entries: Uint32Array;
  readonly shared: SharedPages | null;
  readonly disk: DiskPages | null;
}

/** What failed in the background, and while doing what (for CheckpointWriteError). */
export interface PlaceFailure {
  readonly error: unknown;
  readonly action: string;
}

export class PagePlacer {
  readonly #init: PlacerInit;
  #batch: Batch = newBatch();
  /** Placed batches, for the next ones. */
  readonly #free: Batch[] = [];
  /** Each sent batch's hashing, placed in stream order. */
  readonly #placements = new InOrder();
  /** What was being done when the placements failed, for the error. */
  #action = "writing the pack file";

  constructor(init: PlacerInit) {
    this.#init = init;
  }

  /** The first failure of a placement (hashing, a disk read, the chunk limit, a pack write). */
  get failure(): PlaceFailure | null {
    const p = this.#placements;
    return p.failed ? { error: p.failure, action: this.#action } : null;
  }

  /**
   * A data page (copied: `page` may change after the call). A Promise means wait: hashing or
   * compression is behind; it settles once the oldest batch is placed.
   */
  data(index: number, page: Uint8Array): Promise<void> | undefined {
    const batch = this.#batch;
    batch.pages.set(page, batch.pageCount * PAGE_SIZE_BYTES);
    batch.pageCount += 1;
    this.#record(index, -1);
    if (this.#placements.pending <= WRITE_BATCHES_IN_FLIGHT_MAX) return undefined;
    return this.#placements.oldest();
  }

  /**
   * A zero record: at once when no data record waits to be placed, else in its turn (the next
   * `data` call carries the backpressure, not this).
   */
  zero(index: number, fill: number): void {
    if (this.#batch.recordCount === 0 && this.#placements.pending === 0) {
      this.#init.entries[index] = zeroEntry(fill);
      return;
    }
    this.#record(index, fill);
  }

  /** Places every record given so far; throws the first failure's error. */
  async flush(): Promise<void> {
    this.#send();
    await this.#placements.settled();
    if (this.#placements.failed) throw this.#placements.failure;
  }

  /** Waits for placements in flight without throwing: for abort paths. */
  settle(): Promise<void> {
    return this.#placements.settled();
  }

  #record(index: number, fill: number): void {
    const batch = this.#batch;
    batch.records[batch.recordCount] = index;
    batch.fills[batch.recordCount] = fill;
    batch.recordCount += 1;
    if (batch.pageCount === WRITE_BATCH_PAGES || batch.recordCount === WRITE_BATCH_RECORDS_MAX)
      this.#send();
  }

  /** Sends the open batch to be hashed; its placement follows the previous one's. */
  #send(): void {
    const batch = this.#batch;
    if (batch.recordCount === 0) return;
    this.#batch = this.#free.pop() ?? newBatch();
    const hashed =
      batch.pageCount === 0
        ? null
        : this.#init.workers.run({
            kind: "digest",
            buffer: batch.pages.buffer as ArrayBuffer,
            pages: batch.pageCount,
          });
    this.#placements.add(hashed ?? Promise.resolve(null), async (reply) => {
      let digests: Uint8Array = new Uint8Array(0);
      if (reply !== null) {
        if (!reply.ok || reply.digests === null)
          throw new Error(`hashing pages failed: ${reply.ok ? "no digests" : reply.error}`);
        batch.pages = new Uint8Array(reply.buffer);
        digests = reply.digests;
      }
      await this.#place(batch, digests);
      batch.recordCount = 0;
      batch.pageCount = 0;
      this.#free.push(batch);
    });
  }

  /** Gives each record of a hashed batch its page-map entry, in stream order. */
  async #place(batch: Batch, digests: Uint8Array): Promise<void> {
    const { entries, packer } = this.#init;
    let page = 0;
    for (let r = 0; r < batch.recordCount; r++) {
      const index = batch.records[r] as number;
      const fill = batch.fills[r] as number;
      if (fill >= 0) {
        entries[index] = zeroEntry(fill);
        continue;
      }
      const data = batch.pages.subarray(page * PAGE_SIZE_BYTES, (page + 1) * PAGE_SIZE_BYTES);
      const digest = digests.subarray(page * PAGE_DIGEST_BYTES, (page + 1) * PAGE_DIGEST_BYTES);
      page += 1;
      const found = this.#find(data, digest);
      if (found >= 0) {
        entries[index] = found;
        continue;
      }
      entries[index] = packer.store(data, digest);
      if (packer.full) await packer.seal();
    }
  }

  /** The entry of a content stored already: here, in a shared pack or on a frozen disk; or -1. */
  #find(data: Uint8Array, digest: Uint8Array): number {
    const existing = this.#init.packer.existing(digest);
    if (existing >= 0) return existing;
    const shared = this.#init.shared?.find(digest) ?? -1;
    if (shared >= 0) return shared;
    const disk = this.#init.disk;
    if (disk === null) return -1;
    const known = disk.known(digest);
    if (known >= 0) return known;
    const candidate = disk.candidate(digest);
    if (candidate === null) return -1;
    try {
      return disk.confirm(data, digest, candidate);
    } catch (error) {
      this.#action = "reading a frozen disk layer";
      throw error;
    }
  }
}

function newBatch(): Batch {
  return {
    pages: new Uint8Array(
      new ArrayBuffer(WRITE_BATCH_PAGES * PAGE_SIZE_BYTES),
    ) as Uint8Array<ArrayBuffer>,
    records: new Uint32Array(WRITE_BATCH_RECORDS_MAX),
    fills: new Int16Array(WRITE_BATCH_RECORDS_MAX),
    recordCount: 0,
    pageCount: 0,
  };
}
