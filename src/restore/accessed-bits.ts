/**
 * The accessed-bit working-set estimator (VEE'11's second estimator; docs/accessed-bits.md):
 * the pages the guest's own page tables mark Accessed, read out of a checkpoint. The vCPUs'
 * CR3/CR4/EFER come from the device state's described "cpu" sections, the tables from the
 * checkpoint's own pages (each read verified against its chunk's hash, like any restore read).
 *
 * The estimate lists the page-table pages first (the MMU reads them before any page they map),
 * then the accessed pages in guest-physical order. It is bounded by WORKING_SET_PAGES_MAX.
 */
import type { CheckpointReader } from "../checkpoint/index.ts";
import { UsageError } from "../errors.ts";
import { WORKING_SET_PAGES_MAX } from "../limits.ts";
import { vcpuPagingStates } from "../qemu/migration/cpu-state.ts";
import { type RamLayout, ramLayout, ramPageOf } from "../wss/guest-physical.ts";
import {
  type PhysicalMemory,
  type WalkOptions,
  type WalkResult,
  walkAccessed,
} from "../wss/page-table-walk.ts";
import type { WorkingSet, WorkingSetPage } from "../wss/working-set.ts";

/** The RAM block the guest's physical memory lives in (QEMU's pc and q35 machines). */
const MAIN_RAM_BLOCK = "pc.ram";
/** Decoded chunks kept while walking: table pages cluster, so a few go a long way. */
const WALK_CHUNK_CACHE = 32;

export interface AccessedBitsEstimate {
  readonly workingSet: WorkingSet;
  /** The page-table pages the walk trusts, as (block, page): the only pages an A-bit edit may touch. */
  readonly tablePages: readonly { readonly block: number; readonly page: number }[];
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
  const block = m.ramBlocks.findIndex((b) => b.name === MAIN_RAM_BLOCK);
  const info = m.ramBlocks[block];
  if (info === undefined) {
    throw new UsageError(
      `Cannot estimate from accessed bits: checkpoint "${reader.name}" has no "${MAIN_RAM_BLOCK}" block`,
    );
  }
  const machine = typeof m.vm.machine === "string" ? m.vm.machine : "";
  const layout = ramLayout(machine, info.lengthBytes);
  const device = await reader.deviceState();
  const vcpus = vcpuPagingStates(device.sections, device.vmdescription);
  const memory = checkpointMemory(reader, block, layout);
  const walk = await walkAccessed(memory, vcpus, options);
  const toPage = (pfn: number) => ramPageOf(layout, pfn);
  const tablePages = walk.tablePfns.flatMap((pfn) => {
    const page = toPage(pfn);
    return page === null ? [] : [{ block, page }];
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
    workingSet: { source: "accessed-bits", pages },
    tablePages,
    walk: walk.stats,
    vcpus: vcpus.length,
    notes: walk.notes,
  };
}

/** Guest frames read from the checkpoint's pages (zero pages as zeros), a few chunks cached. */
function checkpointMemory(
  reader: CheckpointReader,
  block: number,
  layout: RamLayout,
): PhysicalMemory {
  const cache = new Map<number, Promise<Uint8Array[]>>();
  const zero = new Uint8Array(4096);
  return {
    isRam: (pfn) => ramPageOf(layout, pfn) !== null,
    async read(pfn) {
      const page = ramPageOf(layout, pfn);
      if (page === null) throw new RangeError(`frame ${pfn} is not RAM`);
      const where = reader.pageKind(block, page);
      if (where.kind === "zero")
        return where.fill === 0 ? zero : new Uint8Array(4096).fill(where.fill);
      let chunk = cache.get(where.chunk);
      if (chunk === undefined) {
        if (cache.size >= WALK_CHUNK_CACHE) {
          const oldest = cache.keys().next().value;
          if (oldest !== undefined) cache.delete(oldest);
        }
        chunk = reader.readChunk(where.chunk);
        cache.set(where.chunk, chunk);
      }
      const data = (await chunk)[where.slot];
      if (data === undefined)
        throw new RangeError(`slot ${where.slot} outside chunk ${where.chunk}`);
      return data;
    },
  };
}
