/**
 * Disk duplicates while saving (Park et al.): a non-zero page whose SHA-256 a frozen disk
 * layer's index knows, and whose bytes equal that block when it is read back, becomes a disk
 * reference instead of stored data. Identical pages share one reference.
 *
 * The page map holds a provisional entry (kind disk duplicate, payload = the reference's
 * arrival number) until commit sorts the references by (layer, offset) and assigns them to disk
 * chunks (`DiskRefCollector.finish`).
 */
import assert from "node:assert/strict";
import { CHECKPOINT_DISK_REFS_MAX } from "../../limits.ts";
import { DiskRefCollector } from "../format/disk-refs.ts";
import { KIND_SHIFT, PageKind } from "../format/format.ts";

/** Where disk blocks come from: src/disk's DiskDuplicates satisfies this. */
export interface DiskBlockSource {
  /** A block of a frozen layer whose SHA-256 may equal `digest`, or null. */
  find(digest: Uint8Array): { readonly layer: string; readonly offsetBytes: number } | null;
  /**
   * That block's bytes now (4096), for the caller to compare. Synchronous: a save confirms
   * each candidate before the next page, and a blocking pread of a frozen layer the index was
   * just built from (page-cache warm) costs a few µs against ~90 µs for an async one.
   */
  read(layer: string, offsetBytes: number): Uint8Array;
  /**
   * true: `find` knows only digests checked against their blocks already (a relayout of a
   * verified checkpoint), so a digest match is the block and nothing is read.
   */
  readonly verified?: boolean;
}

/** A provisional page-map entry for disk reference `ref` (rewritten at commit). */
export function provisionalDiskEntry(ref: number): number {
  assert(ref < CHECKPOINT_DISK_REFS_MAX, "a disk reference number fits the payload");
  return ((PageKind.diskDuplicate << KIND_SHIFT) | ref) >>> 0;
}

export class DiskPages {
  readonly refs = new DiskRefCollector();
  readonly #source: DiskBlockSource;
  /** Candidates whose block did not equal the page (a key collision, or a changed layer). */
  mismatches = 0;

  constructor(source: DiskBlockSource) {
    this.#source = source;
  }

  /** The provisional entry of a page equal to an already referenced block, or -1. */
  known(digest: Uint8Array): number {
    const ref = this.refs.find(digest);
    return ref < 0 ? -1 : provisionalDiskEntry(ref);
  }

  /** A block that may equal the page, to confirm; null when no layer has it. */
  candidate(digest: Uint8Array): { readonly layer: string; readonly offsetBytes: number } | null {
    return this.#source.find(digest);
  }

  /**
   * Reads the candidate block and compares it with `page`: the provisional entry of a new
   * reference when equal, -1 when not.
   */
  confirm(
    page: Uint8Array,
    digest: Uint8Array,
    candidate: { readonly layer: string; readonly offsetBytes: number },
  ): number {
    if (this.#source.verified !== true) {
      const block = this.#source.read(candidate.layer, candidate.offsetBytes);
      if (!Buffer.from(block.buffer, block.byteOffset, block.byteLength).equals(page)) {
        this.mismatches += 1;
        return -1;
      }
    }
    if (this.refs.find(digest) >= 0) assert.fail("a confirmed block is a new reference");
    return provisionalDiskEntry(this.refs.add(candidate.layer, candidate.offsetBytes, digest));
  }
}
