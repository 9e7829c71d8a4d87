/**
 * Pages an incremental checkpoint shares with the checkpoint it starts from (format 1.2,
 * ADR 0007). Before the save, every pack chunk of the source (its own and the packs it shares
 * in turn) is read, verified and indexed by page SHA-256; the source's packs are hard-linked
 * into a temp directory at once, so removing the source meanwhile cannot take them away; the
 * writer then adopts the links into its own directory. A saved page whose digest is indexed
 * is not stored again: its page-map entry is provisional (kind "parent", payload = source
 * chunk << 6 | slot) until commit places the source chunks it used after the checkpoint's own
 * chunks (`place`) and unlinks the packs no page uses.
 *
 * Invariant: a shared page's bytes were verified (chunk hash) when they were indexed, and are
 * verified again by every read of the new checkpoint, which lists the same chunk hash.
 */
import assert from "node:assert/strict";
import { link, mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { InvalidCheckpointError, NotFoundError, UsageError } from "../../errors.ts";
import { SHARED_INDEX_PAGES_MAX } from "../../limits.ts";
import { PAGE_DIGEST_BYTES } from "../format/chunk-hash.ts";
import type { ChunkEntry } from "../format/chunk-table.ts";
import { DedupIndex } from "../format/dedup-index.ts";
import {
  KIND_SHIFT,
  PAYLOAD_MASK,
  PageKind,
  SHARED_PACKS_MAX,
  SLOT_BITS,
  SLOT_MASK,
  sharedPackFile,
  storedEntry,
} from "../format/format.ts";
import { type ParentInfo, packIdOf, type SharedPackInfo } from "../format/manifest.ts";
import type { PageMap } from "../format/page-map.ts";
import { walkChunks } from "../read/page-walk.ts";
import { CheckpointReader } from "../read/reader.ts";
import { check, DigestCache, type PackDigests } from "../store/digest-cache.ts";
import type { CheckpointStore } from "../store/store.ts";

/** A checkpoint pack the new checkpoint may name: where it is linked, and what it is. */
interface SourcePack extends SharedPackInfo {
  /** The pack's file in the source checkpoint's directory. */
  readonly sourcePath: string;
}

/** What commit needs of the shared pages: the chunk-table entries and the manifest's packs. */
export interface PlacedShared {
  readonly packs: readonly SharedPackInfo[];
  readonly chunks: number;
  readonly storedBytes: number;
}

export class SharedPages {
  readonly #index = new DedupIndex();
  /** Indexed chunks' entries, in the order they were indexed (a provisional entry's chunk). */
  readonly #chunks: ChunkEntry[] = [];
  /** Per indexed chunk: which of `#packs` holds it. */
  readonly #packOf: number[] = [];
  /** `<pack id>:<offset>` of every indexed chunk: a chunk two sources list is indexed once. */
  readonly #indexed = new Set<string>();
  readonly #packs: SourcePack[] = [];
  /** Where the links are: a temp directory until the writer adopts them into its own. */
  #dir: string;
  readonly #temp: string;
  /** The checkpoint the save is incremental from (the manifest's `parent`), or null. */
  readonly parent: ParentInfo | null;
  /** Pages indexed so far (bounded by SHARED_INDEX_PAGES_MAX). */
  pagesIndexed = 0;

  readonly #cache: DigestCache;

  private constructor(dir: string, parent: ParentInfo | null, cache: DigestCache) {
    this.#dir = dir;
    this.#temp = dir;
    this.parent = parent;
    this.#cache = cache;
  }

  /** An empty index whose links go to a new directory under the store's tmp/. */
  static async create(store: CheckpointStore, parent: ParentInfo | null): Promise<SharedPages> {
    const dir = await store.newTempPath();
    await mkdir(dir);
    return new SharedPages(dir, parent, new DigestCache(store.home));
  }

  /**
   * Indexes the pages of `source` (all its pack chunks, or with `ownPack: false` only those of
   * the packs it shares) and links its packs. Packs beyond SHARED_PACKS_MAX and pages beyond
   * SHARED_INDEX_PAGES_MAX are left out: those pages are stored again. Hand the result to
   * beginCheckpoint, or `discard` it.
   */
  async add(source: CheckpointReader, opts: { readonly ownPack: boolean }): Promise<void> {
    const m = source.manifest;
    const own: SourcePack = {
      id: packIdOf(m),
      file: sharedPackFile(packIdOf(m)),
      bytes: m.chunks.bytes,
      writtenBy: source.name,
      sourcePath: join(source.dir, m.chunks.file),
    };
    const all = [own, ...m.packs.map((p) => ({ ...p, sourcePath: join(source.dir, p.file) }))];
    const mine = await this.#link(all, opts.ownPack ? 0 : 1, source.name);
    const keyOf = (c: number) =>
      `${all[source.chunks.packOf(c)]?.id}:${source.chunks.entry(c).offset}`;
    const cached = new Map<number, PackDigests>();
    for (const k of mine.keys()) cached.set(k, await this.#cache.load(all[k]?.id ?? ""));
    const toRead = new Set<number>();
    for (let c = 0; c < source.chunks.count; c++) {
      const k = source.chunks.packOf(c);
      if (source.chunks.isDisk(c) || !mine.has(k) || this.#indexed.has(keyOf(c))) continue;
      const digests = check(cached.get(k) ?? new Map(), source.chunks.entry(c));
      if (digests === null) toRead.add(c);
      else this.#take(keyOf(c), source.chunks.entry(c), mine.get(k) ?? -1, digests);
    }
    const fresh = new Map<number, PackDigests>();
    await walkChunks(
      source,
      (c) => toRead.has(c),
      (chunk, stored) => {
        const { digests } = source.decodeChunkWithDigests(chunk, stored);
        const k = source.chunks.packOf(chunk);
        const entry = source.chunks.entry(chunk);
        if (!fresh.has(k)) fresh.set(k, new Map());
        fresh.get(k)?.set(entry.offset, Buffer.from(digests));
        this.#take(keyOf(chunk), entry, mine.get(k) ?? -1, digests);
      },
      null,
    );
    for (const [k, digests] of fresh) await this.#cache.save(all[k]?.id ?? "", digests);
  }

  /**
   * Links the source's packs from `all[from]` on, each once and up to SHARED_PACKS_MAX;
   * returns source pack → index in `#packs` for those linked (now or by an earlier source).
   */
  async #link(
    all: readonly SourcePack[],
    from: number,
    source: string,
  ): Promise<Map<number, number>> {
    const mine = new Map<number, number>();
    for (const [k, p] of all.entries()) {
      if (k < from) continue;
      let at = this.#packs.findIndex((q) => q.id === p.id);
      if (at < 0 && this.#packs.length < SHARED_PACKS_MAX) {
        await linkPack(p.sourcePath, join(this.#dir, p.file), source);
        at = this.#packs.push(p) - 1;
      }
      if (at >= 0) mine.set(k, at);
    }
    return mine;
  }

  /** Indexes one chunk unless it is indexed already or the index is full. */
  #take(key: string, entry: ChunkEntry, pack: number, digests: Buffer): void {
    if (this.#indexed.has(key) || this.pagesIndexed + entry.pageCount > SHARED_INDEX_PAGES_MAX)
      return;
    this.#indexed.add(key);
    this.#add(entry, pack, digests);
  }

  /** Moves the links into `dir`, the writer's temp directory (same file system). */
  async adopt(dir: string): Promise<void> {
    assert(this.#dir === this.#temp, "adopted once");
    for (const p of this.#packs) await rename(join(this.#temp, p.file), join(dir, p.file));
    this.#dir = dir;
    await rm(this.#temp, { recursive: true, force: true });
  }

  /** Removes the links if no writer adopted them. Idempotent. */
  async discard(): Promise<void> {
    await rm(this.#temp, { recursive: true, force: true });
  }

  #add(entry: ChunkEntry, pack: number, digests: Buffer): void {
    assert(pack >= 0, "an indexed chunk's pack is linked");
    const chunk = this.#chunks.push({ ...entry, sha256: Buffer.from(entry.sha256) }) - 1;
    this.#packOf[chunk] = pack;
    this.pagesIndexed += entry.pageCount;
    for (let slot = 0; slot < entry.pageCount; slot++) {
      const digest = digests.subarray(slot * PAGE_DIGEST_BYTES, (slot + 1) * PAGE_DIGEST_BYTES);
      if (this.#index.get(digest) < 0) this.#index.addLast(provisional(chunk, slot));
    }
  }

  /** The provisional entry of a page whose content the source holds, or -1. */
  find(digest: Uint8Array): number {
    return this.#index.get(digest);
  }

  /**
   * Appends the source chunks that pages still use to the chunk table (after the checkpoint's
   * own chunks, by pack and offset), rewrites those pages' entries, and unlinks the packs no
   * chunk uses. Returns the manifest's `packs` (in pack-byte order) and counts.
   */
  async place(map: PageMap, append: (e: ChunkEntry) => number): Promise<PlacedShared> {
    const entries = map.entries;
    const inUse = new Uint8Array(this.#chunks.length);
    for (const e of entries) {
      if (e >>> KIND_SHIFT === PageKind.parent) inUse[(e & PAYLOAD_MASK) >>> SLOT_BITS] = 1;
    }
    const used = [...inUse.keys()].filter((c) => inUse[c] === 1);
    const packOf = (c: number) => this.#packOf[c] ?? -1;
    const offsetOf = (c: number) => this.#chunks[c]?.offset ?? 0;
    used.sort((a, b) => packOf(a) - packOf(b) || offsetOf(a) - offsetOf(b));
    const listed = [...new Set(used.map(packOf))];
    const newIndex = new Map<number, number>();
    let storedBytes = 0;
    for (const c of used) {
      const e = this.#chunks[c] as ChunkEntry;
      newIndex.set(c, append({ ...e, pack: listed.indexOf(packOf(c)) + 1 }));
      storedBytes += e.storedBytes;
    }
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] ?? 0;
      if (e >>> KIND_SHIFT !== PageKind.parent) continue;
      const chunk = newIndex.get((e & PAYLOAD_MASK) >>> SLOT_BITS) ?? -1;
      assert(chunk >= 0, "every shared chunk a page uses was placed");
      entries[i] = storedEntry(chunk, e & SLOT_MASK);
    }
    for (const [k, p] of this.#packs.entries()) {
      if (!listed.includes(k)) await rm(join(this.#dir, p.file), { force: true });
    }
    const packs = listed.map((k) => {
      const { sourcePath: _s, ...info } = this.#packs[k] as SourcePack;
      return info;
    });
    return { packs, chunks: used.length, storedBytes };
  }
}

function provisional(chunk: number, slot: number): number {
  return ((PageKind.parent << KIND_SHIFT) | (chunk << SLOT_BITS) | slot) >>> 0;
}

async function linkPack(from: string, to: string, source: string): Promise<void> {
  try {
    await link(from, to);
  } catch (error) {
    throw new UsageError(
      `Cannot share the pages of checkpoint "${source}": linking its pack ${from} failed ` +
        `(${error instanceof Error ? error.message : String(error)}). Check that it is still ` +
        "listed (snapwake ls), or save a full checkpoint (--full)",
      { cause: error },
    );
  }
}

/**
 * Indexes checkpoint `name` of `store` as the parent of an incremental save: every page it
 * holds (NotFoundError if absent, InvalidCheckpointError if a chunk fails its check).
 */
export async function shareCheckpoint(store: CheckpointStore, name: string): Promise<SharedPages> {
  return shareStore(store, name, { wholeStore: false });
}

/**
 * Indexes `parent` (if any) and, with `wholeStore`, then every other listed checkpoint, newest
 * first, within the index's limits: so identical pages across the store are stored once. A
 * damaged parent fails (InvalidCheckpointError); another damaged checkpoint is skipped.
 */
export async function shareStore(
  store: CheckpointStore,
  parent: string | null,
  opts: { readonly wholeStore: boolean },
): Promise<SharedPages> {
  const first = parent === null ? null : await CheckpointReader.open(store, parent);
  const info = first === null ? null : { name: first.name, createdAt: first.manifest.createdAt };
  const shared = await SharedPages.create(store, info);
  try {
    if (first !== null) await shared.add(first, { ownPack: true });
    if (!opts.wholeStore) return shared;
    const others = (await store.list()).filter((c) => c.name !== parent);
    others.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    for (const c of others) {
      if (shared.pagesIndexed >= SHARED_INDEX_PAGES_MAX) break;
      await addIfSound(store, shared, c.name);
    }
    return shared;
  } catch (error) {
    await shared.discard();
    throw error;
  } finally {
    await first?.close();
  }
}

/** Adds checkpoint `name` to the index unless it is gone or damaged (then it is skipped). */
async function addIfSound(
  store: CheckpointStore,
  shared: SharedPages,
  name: string,
): Promise<void> {
  const reader = await CheckpointReader.open(store, name).catch((error: unknown) => {
    if (error instanceof InvalidCheckpointError || error instanceof NotFoundError) return null;
    throw error;
  });
  if (reader === null) return;
  try {
    await shared.add(reader, { ownPack: true });
  } catch (error) {
    if (!(error instanceof InvalidCheckpointError)) throw error;
  } finally {
    await reader.close();
  }
}
