/**
 * The accessed-bit working-set estimator (VEE'11's second estimator; docs/accessed-bits.md):
 * the pages the guest's own page tables mark Accessed, read out of a checkpoint. The vCPUs'
 * CR3/CR4/EFER come from the device state's described "cpu" sections, the tables from the
 * checkpoint's own pages (each read verified against its chunk's hash, like any restore read).
 *
 * The estimate lists the page-table pages first (the MMU reads them before any page they map),
 * then the accessed pages in guest-physical order. It is bounded by WORKING_SET_PAGES_MAX.
 */
import { CheckpointReader, CheckpointStore } from "../checkpoint/index.ts";
import { UnsupportedStreamError, UsageError } from "../errors.ts";
import { PAGE_SIZE_BYTES, WORKING_SET_PAGES_MAX } from "../limits.ts";
import { vcpuPagingStates } from "../qemu/migration/cpu-state.ts";
import { PC_RAM_BLOCK, type RamLayout, ramLayout, ramPageOf } from "../wss/guest-physical.ts";
import { saveWorkingSet } from "../wss/index.ts";
import {
  type PhysicalMemory,
  type WalkOptions,
  type WalkResult,
  walkAccessed,
} from "../wss/page-table-walk.ts";
import { type PageTableSet, pageSha256, savePageTables } from "../wss/page-tables.ts";
import type { WorkingSet, WorkingSetPage } from "../wss/working-set.ts";

/** Decoded chunks kept while walking: table pages cluster, so a few go a long way. */
const WALK_CHUNK_CACHE = 32;

export interface AccessedBitsEstimate {
  readonly workingSet: WorkingSet;
  /** The page-table pages the walk trusts, pinned to this checkpoint: the only pages an A-bit edit may touch. */
  readonly pageTables: PageTableSet;
  readonly walk: WalkResult["stats"];
  readonly vcpus: number;
  readonly notes: readonly string[];
}

/** Walks the page tables of every vCPU of the checkpoint `reader` has open. */
export async function estimateFromAccessedBits(
  reader: CheckpointReader,
  options: WalkOptions = {},
): Promise<AccessedBitsEstimate> {
  const m = reader.manifest;
  const block = m.ramBlocks.findIndex((b) => b.name === PC_RAM_BLOCK);
  const info = m.ramBlocks[block];
  if (info === undefined) {
    throw new UsageError(
      `Cannot estimate from accessed bits: checkpoint "${reader.name}" has no "${PC_RAM_BLOCK}" block`,
    );
  }
  const machine = typeof m.vm.machine === "string" ? m.vm.machine : "";
  const extraArgs = Array.isArray(m.vm.extraArgs) ? m.vm.extraArgs.map(String) : [];
  const layout = ramLayout(machine, info.lengthBytes, extraArgs);
  const device = await reader.deviceState();
  const vcpus = vcpuPagingStates(device.sections, device.vmdescription);
  const hashes = new Map<number, string>();
  const memory = checkpointMemory(reader, block, layout, hashes);
  const walk = await walkAccessed(memory, vcpus, options);
  const toPage = (pfn: number) => ramPageOf(layout, pfn);
  // An all-zero table (every entry not present) has no bit to clear and is sent as a ZERO
  // record, never through the reset: it is walked, not listed.
  const zeroSha256 = pageSha256(new Uint8Array(PAGE_SIZE_BYTES));
  const tables = walk.tablePfns.flatMap((pfn) => {
    const page = toPage(pfn);
    const sha256 = hashes.get(pfn);
    return page === null || sha256 === undefined || sha256 === zeroSha256
      ? []
      : [{ block, page, sha256 }];
  });
  const pages: WorkingSetPage[] = [];
  const seen = new Set<number>();
  for (const pfn of [...walk.tablePfns, ...walk.accessedPfns]) {
    const page = toPage(pfn);
    if (page === null || seen.has(page)) continue;
    if (pages.length >= WORKING_SET_PAGES_MAX) break;
    seen.add(page);
    pages.push({ block, page, firstMs: 0 });
  }
  return {
    // Out of the main RAM block: a set holding most of it predicts nothing (isBroad).
    workingSet: { source: "accessed-bits", pages, ofPages: info.pageCount },
    pageTables: { checkpointIndexSha256: m.index.sha256, tables },
    walk: walk.stats,
    vcpus: vcpus.length,
    notes: walk.notes,
  };
}

/**
 * Guest frames read from the checkpoint's pages (zero pages as zeros), a few chunks cached;
 * the SHA-256 of every frame read (only tables are read) goes into `hashes`.
 */
function checkpointMemory(
  reader: CheckpointReader,
  block: number,
  layout: RamLayout,
  hashes: Map<number, string>,
): PhysicalMemory {
  const cache = new Map<number, Promise<Uint8Array[]>>();
  const zero = new Uint8Array(PAGE_SIZE_BYTES);
  const chunkOf = (chunk: number): Promise<Uint8Array[]> => {
    let pages = cache.get(chunk);
    if (pages === undefined) {
      if (cache.size >= WALK_CHUNK_CACHE) {
        const oldest = cache.keys().next().value;
        if (oldest !== undefined) cache.delete(oldest);
      }
      pages = reader.readChunk(chunk);
      cache.set(chunk, pages);
    }
    return pages;
  };
  const readFrame = async (pfn: number): Promise<Uint8Array> => {
    const page = ramPageOf(layout, pfn);
    if (page === null) throw new RangeError(`frame ${pfn} is not RAM`);
    const where = reader.pageKind(block, page);
    if (where.kind === "zero") {
      return where.fill === 0 ? zero : new Uint8Array(PAGE_SIZE_BYTES).fill(where.fill);
    }
    const data = (await chunkOf(where.chunk))[where.slot];
    if (data === undefined) throw new RangeError(`slot ${where.slot} outside chunk ${where.chunk}`);
    return data;
  };
  return {
    isRam: (pfn) => ramPageOf(layout, pfn) !== null,
    async read(pfn) {
      const data = await readFrame(pfn);
      hashes.set(pfn, pageSha256(data));
      return data;
    },
  };
}

/** What a save reports of its accessed-bit estimate. */
export type AccessedBitsOutcome =
  | {
      readonly kind: "estimated";
      readonly pages: number;
      readonly tables: number;
      readonly ms: number;
      readonly notes: readonly string[];
    }
  | { readonly kind: "failed"; readonly reason: string };

/**
 * Estimates from the committed checkpoint and stores the working set (source "accessed-bits")
 * and the page-table set beside it. Never throws: the checkpoint is listed and complete
 * without it, so a guest the walk cannot read (32-bit, an unknown machine), or any other
 * failure of the estimate, only leaves the estimate out, with the reason.
 */
export async function recordAccessedBits(
  home: string,
  checkpoint: string,
): Promise<AccessedBitsOutcome> {
  const started = performance.now();
  let reader: CheckpointReader | null = null;
  try {
    reader = await CheckpointReader.open(new CheckpointStore({ home }), checkpoint);
    const e = await estimateFromAccessedBits(reader);
    if (e.workingSet.pages.length === 0) {
      return { kind: "failed", reason: e.notes.join("; ") || "no accessed pages found" };
    }
    await saveWorkingSet(home, checkpoint, e.workingSet);
    await savePageTables(home, checkpoint, e.pageTables);
    return {
      kind: "estimated",
      pages: e.workingSet.pages.length,
      tables: e.pageTables.tables.length,
      ms: performance.now() - started,
      notes: e.notes,
    };
  } catch (error) {
    const known = error instanceof UnsupportedStreamError || error instanceof UsageError;
    const reason = error instanceof Error ? error.message : String(error);
    return { kind: "failed", reason: known ? reason : `the walk failed: ${reason}` };
  } finally {
    await reader?.close();
  }
}
