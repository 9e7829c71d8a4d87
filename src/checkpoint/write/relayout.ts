/**
 * Locality layout (Halite, ATC'13; docs/papers.md §2): rewrites a checkpoint so its stored
 * pages are packed in a given access order: the working set first, in first-access order, so
 * it fills the first few chunks and a partial restore reads it with a few sequential reads
 * instead of most of the pack; then every other stored page in the old pack order.
 *
 * The rewrite is a save: every page is read from the old checkpoint (each chunk verified) and
 * fed to a normal CheckpointWriter in the new order; commit writes, fsyncs and re-reads the new
 * checkpoint in tmp/ and then `store.replace` swaps it in (old renamed aside, new renamed in,
 * old deleted; store.ts says what a crash in between leaves and how `cleanTemp` recovers).
 * Everything but the chunk order, the index, the statistics and the manifest's `layout` is
 * carried over: createdAt, VM spec, QEMU info, stream info, RAM blocks, device state, zero
 * pages, disk references (a disk duplicate stays a reference to the same layer block), and
 * pages in shared packs (format 1.2: they stay shared, only the checkpoint's own pack is new).
 *
 * Invariants: memory holds the page map, the order, and at most RELAYOUT_CHUNK_CACHE_MAX
 * decoded chunks; a failure before the swap leaves the old checkpoint listed and untouched.
 */
import { UsageError } from "../../errors.ts";
import { CHECKPOINT_PAGES_MAX, RELAYOUT_CHUNK_CACHE_MAX } from "../../limits.ts";
import { checkpointIdentity, rebindWorkingSets } from "../../store/identity.ts";
import { StoreLock } from "../../store/lock.ts";
import {
  FILL_MASK,
  KIND_SHIFT,
  PAYLOAD_MASK,
  PageKind,
  SLOT_BITS,
  SLOT_MASK,
} from "../format/format.ts";
import type { CheckpointListing } from "../read/checkpoint-files.ts";
import { CheckpointReader } from "../read/reader.ts";
import type { CheckpointStore } from "../store/store.ts";
import type { DiskBlockSource } from "./disk-pages.ts";
import { SharedPages } from "./shared-pages.ts";
import { beginCheckpoint, type CheckpointWriter } from "./writer.ts";

/** A guest page: block index in the checkpoint's block order, page index in the block. */
export interface LayoutPage {
  readonly block: number;
  readonly page: number;
}

export interface RelayoutOptions {
  /** Recorded as `layout.source` (default "trace"). */
  readonly source?: string;
}

export interface RelayoutResult {
  readonly listing: CheckpointListing;
  /** Distinct non-zero pages of the order (zero pages and repeats are left out). */
  readonly workingSetPages: number;
  /** Chunks holding a working-set page, before and after: what partial restore reads first. */
  readonly chunksBefore: number;
  readonly chunksAfter: number;
  /** Pages of those chunks: what a chunk-unit partial restore prefetches. */
  readonly prefetchPagesBefore: number;
  readonly prefetchPagesAfter: number;
  readonly ms: number;
}

/** Rewrites checkpoint `name` with its stored pages in `order` first (see the header). */
export async function relayoutCheckpoint(
  store: CheckpointStore,
  name: string,
  order: readonly LayoutPage[],
  opts: RelayoutOptions = {},
): Promise<RelayoutResult> {
  const lock = await StoreLock.acquire(store.home, {
    command: "relayout",
    mode: "shared",
    uses: [{ checkpoint: name, access: "write" }],
  });
  try {
    return await relayoutLocked(store, name, order, opts);
  } finally {
    await lock.release();
  }
}

async function relayoutLocked(
  store: CheckpointStore,
  name: string,
  order: readonly LayoutPage[],
  opts: RelayoutOptions,
): Promise<RelayoutResult> {
  const started = performance.now();
  const identity = await checkpointIdentity(store.home, name);
  const old = await CheckpointReader.open(store, name);
  let writer: CheckpointWriter | null = null;
  let ws: Uint32Array;
  let before: ChunkSpan;
  try {
    ws = workingSetIndices(old, order);
    before = chunkSpan(old, ws);
    writer = await beginCheckpoint(store, {
      name,
      vm: old.manifest.vm,
      qemu: old.manifest.qemu,
      ...(old.manifest.runtime === undefined ? {} : { runtime: old.manifest.runtime }),
      stream: old.stream(),
      compressionLevel: old.manifest.chunks.level,
      now: () => new Date(old.manifest.createdAt),
      layout: { kind: "access-order", workingSetPages: ws.length, source: opts.source ?? "trace" },
      replace: true,
      ...(old.manifest.layers.length > 0 ? { diskBlocks: diskSource(old) } : {}),
      // Pages in packs it shares stay shared: only its own pack is rewritten.
      ...(old.manifest.packs.length > 0 ? { shared: await sharedPacksOf(store, old) } : {}),
      ...(old.manifest.parent === undefined ? {} : { parent: old.manifest.parent }),
    });
    await copyPages(old, writer, ws);
    if (old.manifest.layers.length > 0) writer.setDisks(old.manifest.layers, old.manifest.disks);
    writer.setDeviceState(await old.deviceState());
  } catch (error) {
    await writer?.abort();
    await old.close();
    throw error;
  }
  await old.close(); // open handles stay valid across the swap; close before it anyway
  const listing = await writer.commit();
  // The same pages in another order: its working sets stay true for the new manifest.
  if (identity !== null) await rebindWorkingSets(store.home, name, identity);
  const fresh = await CheckpointReader.open(store, name);
  const after = await Promise.resolve(chunkSpan(fresh, ws)).finally(() => fresh.close());
  return {
    listing,
    workingSetPages: ws.length,
    chunksBefore: before.chunks,
    chunksAfter: after.chunks,
    prefetchPagesBefore: before.pages,
    prefetchPagesAfter: after.pages,
    ms: Math.round(performance.now() - started),
  };
}

/** The packs `old` shares (not its own, which the relayout rewrites), indexed again. */
async function sharedPacksOf(store: CheckpointStore, old: CheckpointReader): Promise<SharedPages> {
  const shared = await SharedPages.create(store, old.manifest.parent ?? null);
  await shared.add(old, { ownPack: false }).catch(async (error: unknown) => {
    await shared.discard();
    throw error;
  });
  return shared;
}

/**
 * The old checkpoint's disk references as a DiskBlockSource keyed by full SHA-256: a page
 * whose digest a reference has *is* that block (the old reader verified it against the hash),
 * so the source is `verified` and no layer is read again.
 */
function diskSource(old: CheckpointReader): DiskBlockSource {
  const byDigest = new Map<string, { layer: string; offsetBytes: number }>();
  for (let i = 0; i < old.diskRefs.count; i++) {
    const ref = old.diskRefs.entry(i);
    const layer = old.manifest.layers[ref.layer];
    if (layer === undefined) continue; // checked when the index was opened
    byDigest.set(Buffer.from(ref.sha256).toString("hex"), {
      layer: layer.id,
      offsetBytes: ref.offsetBytes,
    });
  }
  return {
    find: (digest) => byDigest.get(Buffer.from(digest).toString("hex")) ?? null,
    verified: true,
    read: () => {
      throw new Error("relayout: a verified disk source is never read");
    },
  };
}

/** Global page indices of the order's non-zero pages, first occurrence first. */
function workingSetIndices(old: CheckpointReader, order: readonly LayoutPage[]): Uint32Array {
  if (order.length > CHECKPOINT_PAGES_MAX)
    throw new UsageError(`Cannot relayout by ${order.length} pages: the limit is the page count`);
  const map = old.pageMap;
  const seen = new Uint8Array(map.entries.length);
  const out: number[] = [];
  for (const { block, page } of order) {
    const shape = map.blocks[block];
    if (shape === undefined || !Number.isInteger(page) || page < 0 || page >= shape.pageCount) {
      throw new UsageError(
        `Cannot relayout "${old.name}": page ${page} of block ${block} is outside its RAM blocks`,
      );
    }
    const i = map.indexOf(block, page);
    if (seen[i] === 1 || (map.entries[i] ?? 0) >>> KIND_SHIFT === PageKind.zero) continue;
    seen[i] = 1;
    out.push(i);
  }
  return Uint32Array.from(out);
}

interface ChunkSpan {
  readonly chunks: number;
  readonly pages: number;
}

/** The chunks holding these pages and their page count. */
function chunkSpan(reader: CheckpointReader, pages: Uint32Array): ChunkSpan {
  const chunks = new Set<number>();
  for (const i of pages) chunks.add(chunkOf(reader.pageMap.entries[i] ?? 0));
  let total = 0;
  for (const c of chunks) total += reader.chunks.pageCount(c);
  return { chunks: chunks.size, pages: total };
}

function chunkOf(entry: number): number {
  return (entry & PAYLOAD_MASK) >>> SLOT_BITS;
}

/** Feeds every page: zero pages, then the working set in order, then the rest in pack order. */
async function copyPages(
  old: CheckpointReader,
  w: CheckpointWriter,
  ws: Uint32Array,
): Promise<void> {
  const map = old.pageMap;
  w.setRamBlocks(old.blocks.map((b) => ({ name: b.name, lengthBytes: b.lengthBytes })));
  const entries = map.entries;
  const chosen = new Uint8Array(entries.length);
  for (const i of ws) chosen[i] = 1;
  const rest: number[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] ?? 0;
    if (e >>> KIND_SHIFT !== PageKind.zero) {
      if (chosen[i] === 0) rest.push(i);
      continue;
    }
    // A fill-0 page left alone reads as zero (unsent); one with another fill is recorded.
    if ((e & FILL_MASK) !== 0) w.putZero(...where(old, i), e & FILL_MASK);
  }
  // Old pack order: by (chunk, slot); pages sharing a slot (duplicates) by address.
  const payload = (i: number) => (entries[i] ?? 0) & PAYLOAD_MASK;
  rest.sort((a, b) => payload(a) - payload(b) || a - b);
  const chunks = new ChunkCache(old);
  for (const list of [ws, rest]) {
    for (const i of list) {
      const e = entries[i] ?? 0;
      const page = (await chunks.get(chunkOf(e)))[e & SLOT_MASK];
      if (page === undefined) throw new Error(`relayout: slot of ${map.describe(i)} is missing`);
      const wait = w.putPage(...where(old, i), page);
      if (wait) await wait;
    }
  }
}

function where(old: CheckpointReader, i: number): [number, number] {
  const b = old.pageMap.blockOf(i);
  return [b, i - (old.pageMap.blockStarts[b] ?? 0)];
}

/** Verified, decoded chunks of the old checkpoint, least recently used dropped first. */
class ChunkCache {
  readonly #reader: CheckpointReader;
  readonly #chunks = new Map<number, Uint8Array[]>();

  constructor(reader: CheckpointReader) {
    this.#reader = reader;
  }

  async get(chunk: number): Promise<Uint8Array[]> {
    const hit = this.#chunks.get(chunk);
    if (hit !== undefined) {
      this.#chunks.delete(chunk);
      this.#chunks.set(chunk, hit);
      return hit;
    }
    const pages = await this.#reader.readChunk(chunk);
    this.#chunks.set(chunk, pages);
    if (this.#chunks.size > RELAYOUT_CHUNK_CACHE_MAX) {
      const oldest = this.#chunks.keys().next();
      if (!oldest.done) this.#chunks.delete(oldest.value);
    }
    return pages;
  }
}
