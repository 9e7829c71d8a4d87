/**
 * Everything a lazy or partial restore sends before the guest may run
 * (docs/migration-protocol.md §6.7): header, configuration, OPEN_RETURN_PATH, POSTCOPY_ADVISE,
 * RAM START, DISCARD commands for all of RAM, PACKAGED(LISTEN + device FULL sections + RUN),
 * then the working set in RAM PARTs after LISTEN.
 *
 * The working set goes after the package, as postcopy pages, which QEMU's listen thread places
 * with UFFDIO_COPY; sent before LISTEN, each page cost QEMU a page fault instead, about twice
 * as long on the bench hosts (ADR 0027). The guest still does not run before all of it is in
 * the stream: the target QEMU starts with `-S`, so RUN leaves it paused, and the restore sends
 * `cont` only after this returns (lazy.ts).
 *
 * The first DISCARD makes QEMU turn transparent huge pages off for all guest RAM (§6.3), so
 * each page placed lands as one 4 KiB page, not a zeroed 2 MiB huge page around it (a scattered
 * working set touched most of a 4 GiB guest's huge pages, ~2 s of page zeroing).
 *
 * Invariants: ADVISE precedes RAM START (it discards everything loaded before it); the
 * DISCARDs cover all of RAM, since no page goes before LISTEN, so at least one is sent (§6.1);
 * the working set is marked sent before any request is served, so none of it is answered to
 * a request and none goes twice; every prefetched stored page comes from a chunk that passed
 * its hash check, and the guest is released only after all of them are in the stream, so a
 * corrupt working-set chunk fails the restore before any guest code runs.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../errors.ts";
import {
  PAGE_SIZE_BYTES,
  PRELUDE_PAGES_MAX,
  PRELUDE_READ_AHEAD_CHUNKS,
  RESTORE_QUEUED_BYTES_MAX,
} from "../../limits.ts";
import {
  buildPostcopyPackage,
  type DeviceState,
  encodeOpenReturnPath,
  encodePostcopyAdvise,
  type RamSectionInfo,
} from "../../qemu/migration/index.ts";
import type { MigrationChannel } from "./channel.ts";
import type { ChunkCache } from "./chunk-cache.ts";
import { discardCommands } from "./discard.ts";
import type { FillOrder, PageKinds } from "./fill-order.ts";
import type { Placement } from "./placement.ts";
import type { PageRef } from "./record.ts";

/** ZERO records per RAM PART: 9 bytes each, so a part stays well under 64 KiB. */
const ZERO_RECORDS_PER_PART = 4096;

export interface PreludeInput {
  readonly source: PageKinds;
  readonly blockNames: readonly string[];
  readonly blockBytes: readonly number[];
  readonly configuration: Uint8Array;
  readonly ram: RamSectionInfo;
  readonly device: DeviceState;
  readonly channel: MigrationChannel;
  readonly placement: Placement;
  readonly cache: ChunkCache;
  /** The working set to send after the package (boundedPrelude); not yet marked sent. */
  readonly plan: WorkingSetPlan;
}

export interface PreludeCounts {
  /** Pages sent before the guest was released (stored and zero). */
  readonly pagesPrefetched: number;
  readonly zeroPagesPrefetched: number;
  /** Chunks read (and verified) for them. */
  readonly chunksPrefetched: number;
}

/** Sends the prelude; resolves once the package and then the working set are in the socket. */
export async function sendPrelude(input: PreludeInput): Promise<PreludeCounts> {
  const { writer } = input.channel;
  writer.header();
  if (input.configuration.byteLength > 0) writer.configuration(input.configuration);
  writer.raw(encodeOpenReturnPath());
  // All blocks are ordinary 4 KiB-page RAM: the OR of their page sizes is 0x1000 (§1.6).
  writer.raw(encodePostcopyAdvise(PAGE_SIZE_BYTES, PAGE_SIZE_BYTES));
  const blocks = input.blockNames.map((name, b) => ({
    name,
    lengthBytes: input.blockBytes[b] ?? 0,
  }));
  writer.ramStart(input.ram, blocks);
  const { plan } = input;
  // Nothing goes before LISTEN, so all of RAM is discarded: one range a block, where leaving
  // the working set out took thousands of ranges for a scattered one (built here, then one
  // madvise each in QEMU). Its pages arrive after LISTEN like any other.
  for (const command of discardCommands(input.blockNames, input.placement)) writer.raw(command);
  // Marked before any request is served (the caller begins serving after this returns): none
  // of them is ever answered, so none goes twice.
  for (const g of plan.pages) input.placement.markSent(g);
  writer.resetContinuation(); // as QEMU does at the discard step: the next record names its block
  writer.packaged(buildPostcopyPackage(input.device));
  const counts = await sendWorkingSet(input, plan);
  await writer.flush();
  return counts;
}

/** A working set as the prelude sends it: zero pages, then stored pages by chunk. */
export interface WorkingSetPlan {
  /** Global page indices, without duplicates. */
  readonly pages: readonly number[];
  readonly zeros: readonly number[];
  readonly byChunk: ReadonlyMap<number, readonly number[]>;
  /** The chunks holding its stored pages, in the order they are sent (ascending). */
  readonly chunks: readonly number[];
}

/**
 * A partial restore's working set split at the prelude's bound (docs/restore.md, "A bounded
 * prelude"): the plan of what goes before the guest runs, and the chunks holding the rest, to
 * go first in the fill. The pages are deduped, in the working set's order, each followed by
 * its chunk's other pages the first time that chunk comes up (unit "chunk"); each chunk is
 * expanded once (a working set of all of a 512 MiB guest took 0.17 s when every page was). A
 * working set in first-touch order (some `firstMs` above 0) is cut after PRELUDE_PAGES_MAX
 * pages; one without times has no order to cut by and goes whole. Throws UsageError for a page
 * outside the checkpoint.
 */
export function boundedPrelude(
  source: PageKinds,
  placement: Placement,
  order: Pick<FillOrder, "pagesOf">,
  workingSet: readonly (PageRef & { readonly firstMs?: number })[],
  unit: "page" | "chunk",
): { plan: WorkingSetPlan; fillFirst: number[] } {
  const taken = new Uint8Array(placement.totalPages);
  const pages: number[] = [];
  const chunkOf: number[] = []; // chunkOf[i]: the chunk holding pages[i], -1 for a zero page
  const take = (g: number, chunk: number) => {
    if (taken[g] === 1) return;
    taken[g] = 1;
    pages.push(g);
    chunkOf.push(chunk);
  };
  const seenChunks = new Set<number>();
  const chunks: number[] = [];
  const ends: number[] = []; // pages.length once chunks[i] was taken
  for (const { block, page } of workingSet) {
    const count = Number.isInteger(block) ? placement.pagesOf(block) : 0;
    if (!(block >= 0 && block < placement.blockCount && Number.isInteger(page) && page >= 0)) {
      throw new UsageError(`Cannot prefetch page ${page} of block ${block}: no such block`);
    }
    if (page >= count) {
      throw new UsageError(`Cannot prefetch page ${page} of block ${block}: it has ${count}`);
    }
    const where = source.pageKind(block, page);
    const chunk = where.kind === "stored" ? where.chunk : -1;
    take(placement.index(block, page), chunk);
    if (chunk < 0 || seenChunks.has(chunk)) continue;
    seenChunks.add(chunk);
    if (unit === "chunk") for (const g of order.pagesOf(chunk)) take(g, chunk);
    chunks.push(chunk);
    ends.push(pages.length);
  }
  const timed = workingSet.some((p) => (p.firstMs ?? 0) > 0);
  const cut = timed ? Math.min(PRELUDE_PAGES_MAX, pages.length) : pages.length;
  return {
    plan: planWorkingSet(pages.slice(0, cut), chunkOf),
    fillFirst: chunks.filter((_, i) => (ends[i] ?? 0) > cut),
  };
}

/**
 * Groups the working set `pages` (global indices, no duplicates) by how they are sent, each
 * page's chunk given as `chunkOf` (same positions; -1 for a zero page): no page is looked up
 * again, on the restore's critical path.
 */
function planWorkingSet(pages: readonly number[], chunkOf: readonly number[]): WorkingSetPlan {
  const zeros: number[] = [];
  const byChunk = new Map<number, number[]>();
  pages.forEach((g, i) => {
    const chunk = chunkOf[i] ?? -1;
    if (chunk < 0) {
      zeros.push(g);
      return;
    }
    const list = byChunk.get(chunk);
    if (list === undefined) byChunk.set(chunk, [g]);
    else list.push(g);
  });
  const chunks = [...byChunk.keys()].sort((a, b) => a - b);
  return { pages, zeros, byChunk, chunks };
}

/** Zero pages first, then stored pages chunk by chunk, each chunk read and verified once. */
async function sendWorkingSet(input: PreludeInput, plan: WorkingSetPlan): Promise<PreludeCounts> {
  const { source, placement, cache, channel } = input;
  const { zeros, byChunk, chunks } = plan;
  for (let i = 0; i < zeros.length; i += ZERO_RECORDS_PER_PART) {
    channel.writer.beginRamPart();
    for (const g of zeros.slice(i, i + ZERO_RECORDS_PER_PART)) {
      const { block, page } = placement.locate(g);
      const where = source.pageKind(block, page);
      channel.writer.zeroPage(block, page, where.kind === "zero" ? where.fill : 0);
    }
    channel.writer.endRamSection();
  }
  for (const [i, chunk] of chunks.entries()) {
    // Urgent: the guest waits for the working set. InvalidCheckpointError here: no guest ran.
    const pages = await cache.get(chunk, "prelude");
    // Keep the chunk workers busy: one chunk ahead left them idle while this thread encoded
    // and sent (a 66,000-page working set went out at half of eager's speed).
    for (const next of chunks.slice(i + 1, i + 1 + PRELUDE_READ_AHEAD_CHUNKS))
      cache.prefetch(next, "prelude");
    channel.writer.beginRamPart();
    for (const g of byChunk.get(chunk) ?? []) {
      const { block, page } = placement.locate(g);
      const where = source.pageKind(block, page);
      const data = where.kind === "stored" ? pages[where.slot] : undefined;
      assert(data !== undefined, "a prefetched stored page is in its verified chunk");
      channel.writer.page(block, page, data);
    }
    channel.writer.endRamSection();
    await channel.writer.flush();
    if (channel.out.queuedBytes > RESTORE_QUEUED_BYTES_MAX) await channel.out.whenDrained();
    if (channel.isClosed()) throw new Error("the restoring QEMU closed the migration channel");
  }
  const pagesPrefetched = plan.pages.length;
  return {
    pagesPrefetched,
    zeroPagesPrefetched: zeros.length,
    chunksPrefetched: chunks.length,
  };
}
