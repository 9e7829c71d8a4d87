/**
 * CheckpointWriter: receives a migration stream's RAM blocks, pages (in stream order, the last
 * version of a page wins) and device state, and turns them into a checkpoint in a temp
 * directory that `commit` verifies and renames into the catalogue (ADR 0003).
 *
 * Pages go through two stages on the chunk workers (ADR 0013, "Save"): they are gathered into
 * batches that a worker hashes, then deduplicated here in stream order, and full chunks go to a
 * worker to be compressed before they are appended to the pack in chunk order. This thread only
 * parses, copies and looks up; the same workers verify the pack at commit.
 *
 * Invariants: memory holds the page map (4 B a page), a seen-bit a page, the dedup index
 * (~48 B a distinct page), the open page batch and up to WRITE_BATCHES_IN_FLIGHT_MAX + 1 being
 * hashed or placed, the open chunk and up to WRITE_CHUNKS_IN_FLIGHT_MAX + 1 being compressed,
 * and two pack write buffers, never more page data;
 * a page's records take effect in stream order (zero records ride in the batches), so its last
 * record wins; any write error fails the writer for good, removes its temp directory and is
 * rethrown by every later call; nothing is listed unless commit returned.
 */
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { NotFoundError, UsageError } from "../../errors.ts";
import { DEVICE_STATE_BYTES_MAX, PAGE_SIZE_BYTES, WRITE_WORKERS } from "../../limits.ts";
import { ZSTD_LEVEL_DEFAULT, ZSTD_LEVEL_MAX, ZSTD_LEVEL_MIN } from "../format/codec.ts";
import type { DeviceState } from "../format/device-file.ts";
import { FileName } from "../format/format.ts";
import { toJsonObject } from "../format/json-value.ts";
import type {
  DiskInfo,
  LayerInfo,
  LayoutInfo,
  ParentInfo,
  RuntimeInfo,
} from "../format/manifest.ts";
import { checkCheckpointName } from "../format/names.ts";
import { PageMap } from "../format/page-map.ts";
import { checkRamBlocks, type RamBlockInput } from "../format/ram-blocks.ts";
import type { CheckpointListing } from "../read/checkpoint-files.ts";
import { ChunkWorkers } from "../read/chunk-workers.ts";
import type { CheckpointStore } from "../store/store.ts";
import { CheckpointWriteError, wrapWriteError } from "../store/store-io.ts";
import { ChunkPacker } from "./chunk-packer.ts";
import { commitFiles, type WriterSnapshot } from "./commit.ts";
import { type DiskBlockSource, DiskPages } from "./disk-pages.ts";
import { PackWriter } from "./pack-writer.ts";
import { PagePlacer } from "./page-placer.ts";
import type { SharedPages } from "./shared-pages.ts";

export interface BeginOptions {
  readonly name: string;
  /** The VM spec: a plain JSON object, stored as given. */
  readonly vm: object;
  /** QEMU info (version, machine, command line): a plain JSON object. */
  readonly qemu: object;
  /** What replay needs of the stream: the configuration section bytes, plus JSON fields. */
  readonly stream: { readonly configuration: Uint8Array; readonly [key: string]: unknown };
  /** zstd level 1..19; default 1 (ADR 0002). */
  readonly compressionLevel?: number;
  /** Clock for `createdAt`; tests pin it. Default: the system clock. */
  readonly now?: () => Date;
  /**
   * Frozen disk layers to find duplicate pages in (format 1.1). Pages equal to one of their
   * blocks are referenced, not stored; `setDisks` must then name every layer referenced.
   */
  readonly diskBlocks?: DiskBlockSource;
  /** Recorded as the manifest's `layout` (a relayout's access order, docs/format.md §2.3). */
  readonly layout?: LayoutInfo;
  /**
   * Incremental (format 1.2, ADR 0007): pages whose content these indexed packs hold are
   * shared, not stored again (shareCheckpoint). The writer takes it over: begin adopts its
   * links, or discards them if begin fails.
   */
  readonly shared?: SharedPages;
  /** Recorded as the manifest's `runtime` (format 1.3): the saving QEMU and machine type. */
  readonly runtime?: RuntimeInfo;
  /** Recorded as the manifest's `parent` (informative lineage); default: `shared.parent`. */
  readonly parent?: ParentInfo;
  /**
   * Commit replaces the listed checkpoint of this name instead of refusing it (relayout only):
   * the old directory is renamed aside, the new one in, then the old deleted (store.replace).
   */
  readonly replace?: boolean;
}

type State = "open" | "committing" | "committed" | "failed" | "aborted";

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE_BYTES);

/** Starts a checkpoint named `opts.name` in `store`; UsageError if the name is taken. */
export async function beginCheckpoint(
  store: CheckpointStore,
  opts: BeginOptions,
): Promise<CheckpointWriter> {
  checkCheckpointName(opts.name);
  const level = opts.compressionLevel ?? ZSTD_LEVEL_DEFAULT;
  if (!Number.isInteger(level) || level < ZSTD_LEVEL_MIN || level > ZSTD_LEVEL_MAX) {
    throw new UsageError(
      `Cannot use compression level ${level}: choose ${ZSTD_LEVEL_MIN} to ${ZSTD_LEVEL_MAX}`,
    );
  }
  const { configuration, ...info } = opts.stream;
  if (!(configuration instanceof Uint8Array))
    throw new UsageError("stream.configuration must be a Uint8Array");
  const meta = {
    vm: toJsonObject(opts.vm, "the VM spec"),
    qemu: toJsonObject(opts.qemu, "the QEMU info"),
    streamInfo: toJsonObject(info, "the stream info"),
    configuration: configuration.slice(),
    level,
    createdAt: (opts.now?.() ?? new Date()).toISOString(),
    layout: opts.layout ?? null,
    replace: opts.replace === true,
    parent: opts.parent ?? opts.shared?.parent ?? null,
    runtime: opts.runtime ?? null,
  };
  const shared = opts.shared ?? null;
  if (!meta.replace)
    await refuseTakenName(store, opts.name).catch(async (error: unknown) => {
      await shared?.discard();
      throw error;
    });
  const dir = await store.newTempPath();
  try {
    await mkdir(dir);
    await shared?.adopt(dir);
    const pack = await PackWriter.create(store.io, join(dir, FileName.pack));
    return new CheckpointWriter({
      workers: ChunkWorkers.start(WRITE_WORKERS),
      store,
      name: opts.name,
      dir,
      pack,
      meta,
      started: performance.now(),
      disk: opts.diskBlocks === undefined ? null : new DiskPages(opts.diskBlocks),
      shared,
    });
  } catch (error) {
    await shared?.discard();
    await rm(dir, { recursive: true, force: true });
    throw new CheckpointWriteError(opts.name, `creating ${dir}`, error);
  }
}

async function refuseTakenName(store: CheckpointStore, name: string): Promise<void> {
  const taken = await store.stat(name).then(
    () => true,
    (error: unknown) => !(error instanceof NotFoundError),
  );
  if (taken)
    throw new UsageError(
      `A checkpoint named "${name}" exists already: choose another name or rm it`,
    );
}

export interface WriterInit {
  /** The writer's own: hashing, compression and the commit's read-back; closed at its end. */
  readonly workers: ChunkWorkers;
  readonly store: CheckpointStore;
  readonly name: string;
  readonly dir: string;
  readonly pack: PackWriter;
  readonly meta: WriterSnapshot["meta"];
  readonly started: number;
  readonly disk: DiskPages | null;
  readonly shared: SharedPages | null;
}

/** Writes one checkpoint; created by beginCheckpoint, finished by commit or abort. */
export class CheckpointWriter {
  readonly name: string;
  readonly #init: WriterInit;
  readonly #packer: ChunkPacker;
  #map: PageMap | null = null;
  #seen = new Uint8Array(0);
  #device: DeviceState | null = null;
  #layers: { layers: readonly LayerInfo[]; disks: readonly DiskInfo[] } = { layers: [], disks: [] };
  #counts = { received: 0, seen: 0, stale: 0 };
  #state: State = "open";
  /** A backpressure Promise returned by putPage has not settled yet. */
  #waiting = false;
  #error: unknown = null;
  #cleanup: Promise<void> | null = null;
  #placer: PagePlacer | null = null;

  constructor(init: WriterInit) {
    this.name = init.name;
    this.#init = init;
    this.#packer = new ChunkPacker(init.pack, init.workers, init.meta.level);
  }

  /** The RAM blocks, in stream order; called once, before any page. */
  setRamBlocks(blocks: readonly RamBlockInput[]): void {
    this.#checkOpen();
    if (this.#map !== null) throw new UsageError("setRamBlocks was called twice");
    const shapes = checkRamBlocks(blocks);
    const total = shapes.reduce((n, b) => n + b.pageCount, 0);
    this.#map = new PageMap(shapes, new Uint32Array(total)); // all zero entries: fill 0
    this.#seen = new Uint8Array(Math.ceil(total / 8));
    const { workers, shared, disk } = this.#init;
    const entries = this.#map.entries;
    this.#placer = new PagePlacer({ workers, packer: this.#packer, entries, shared, disk });
  }

  /**
   * A page's content. `data` (4096 bytes) is a view valid only during the call (it is copied).
   * Returns a Promise only when the caller must wait (hashing, compression or pack writes are
   * behind); do not call again before it settles.
   */
  putPage(blockIndex: number, pageIndex: number, data: Uint8Array): void | Promise<void> {
    const index = this.#receive(blockIndex, pageIndex);
    if (data.byteLength !== PAGE_SIZE_BYTES)
      assert.fail(`a page is ${PAGE_SIZE_BYTES} bytes, got ${data.byteLength}`);
    const placer = this.#placer as PagePlacer;
    if (ZERO_PAGE.equals(data)) return placer.zero(index, 0);
    const wait = placer.data(index, data);
    if (wait === undefined) return;
    this.#waiting = true;
    return wait.then(() => {
      this.#waiting = false;
      this.#rethrow();
    });
  }

  /** A page that is `fill` repeated (QEMU's ZERO record). */
  putZero(blockIndex: number, pageIndex: number, fill: number): void {
    const index = this.#receive(blockIndex, pageIndex);
    if (!Number.isInteger(fill) || fill < 0 || fill > 0xff) assert.fail(`fill ${fill} is a byte`);
    (this.#placer as PagePlacer).zero(index, fill);
  }

  /**
   * The frozen disk layers this checkpoint depends on and each drive's chain (top first);
   * called before commit when the VM has frozen disks. Every referenced layer must be listed.
   */
  setDisks(layers: readonly LayerInfo[], disks: readonly DiskInfo[]): void {
    this.#checkOpen();
    const ids = new Set(layers.map((l) => l.id));
    const missing = this.#init.disk?.refs.layerIds.find((id) => !ids.has(id));
    if (missing !== undefined)
      throw new UsageError(`setDisks: referenced layer ${missing} is missing`);
    if (disks.some((d) => d.layers.some((id) => !ids.has(id)))) {
      throw new UsageError("setDisks: a drive's chain names a layer that is not listed");
    }
    this.#layers = { layers: [...layers], disks: [...disks] };
  }

  /** The device state blob; called once. The bytes are copied. */
  setDeviceState(state: {
    readonly sections: Uint8Array;
    readonly vmdescription: Uint8Array | null;
  }): void {
    this.#checkOpen();
    if (this.#device !== null) throw new UsageError("setDeviceState was called twice");
    const bytes = state.sections.byteLength + (state.vmdescription?.byteLength ?? 0);
    if (bytes > DEVICE_STATE_BYTES_MAX) {
      throw new UsageError(
        `Cannot store ${bytes} bytes of device state: the limit is ${DEVICE_STATE_BYTES_MAX}`,
      );
    }
    this.#device = {
      sections: state.sections.slice(),
      vmdescription: state.vmdescription?.slice() ?? null,
    };
  }

  /**
   * Places every page, flushes, writes index, device state and manifest, fsyncs, re-opens and
   * verifies everything (every chunk read back), then renames the checkpoint into the catalogue
   * and returns it. On any failure nothing is listed and the temp directory is gone.
   */
  async commit(): Promise<CheckpointListing> {
    this.#checkOpen();
    assert(!this.#waiting, "commit waits for putPage's backpressure Promise");
    if (this.#map === null) throw new UsageError("Cannot commit: setRamBlocks was never called");
    if (this.#device === null)
      throw new UsageError("Cannot commit: setDeviceState was never called");
    this.#state = "committing";
    try {
      await this.#placer?.flush();
      await this.#packer.finish();
      const listing = await commitFiles({
        ...this.#init,
        packer: this.#packer,
        pageMap: this.#map,
        device: this.#device,
        counts: { ...this.#counts },
        layers: this.#layers,
      });
      this.#state = "committed";
      await this.#init.workers.close();
      return listing;
    } catch (error) {
      try {
        this.#fail(error, this.#placer?.failure?.action ?? "committing");
      } catch (wrapped) {
        // A failed commit returns only once its temp directory is gone: nothing lingers.
        await this.#cleanup;
        throw wrapped;
      }
    }
  }

  /** Abandons the checkpoint: removes its temp directory; nothing is listed. Idempotent. */
  async abort(_reason?: Error): Promise<void> {
    if (this.#state === "committed") return;
    assert(this.#state !== "committing", "abort is not called while commit runs");
    if (this.#state === "open") {
      this.#state = "aborted";
      this.#cleanup = this.#discard();
    }
    await this.#cleanup;
  }

  #receive(blockIndex: number, pageIndex: number): number {
    this.#checkOpen();
    if (this.#waiting)
      assert.fail(
        "a page arrived before putPage's backpressure Promise settled (the caller waits for it)",
      );
    this.#rethrow();
    if (this.#map === null) throw new UsageError("Pages arrived before setRamBlocks");
    const index = this.#map.indexOf(blockIndex, pageIndex);
    const bit = 1 << (index & 7);
    const byte = this.#seen[index >>> 3] ?? 0;
    if ((byte & bit) !== 0) this.#counts.stale += 1;
    else {
      this.#seen[index >>> 3] = byte | bit;
      this.#counts.seen += 1;
    }
    this.#counts.received += 1;
    return index;
  }

  #checkOpen(): void {
    if (this.#state === "failed") throw this.#error;
    assert(this.#state === "open", `the writer is open (it is ${this.#state})`);
  }

  /** Fails the writer with the first failure of its background work, if there was one. */
  #rethrow(): void {
    const failure = this.#placer?.failure;
    if (failure) this.#fail(failure.error, failure.action);
  }

  /** Fails the writer for good: cleans up in the background and throws the (wrapped) error. */
  #fail(error: unknown, action: string): never {
    if (this.#state !== "failed") {
      this.#state = "failed";
      this.#error = wrapWriteError(this.name, action, error, this.#init.shared !== null);
      this.#cleanup = this.#discard();
    }
    throw this.#error;
  }

  async #discard(): Promise<void> {
    // Pending jobs reject and the chains record it; then no page is written any more.
    await this.#init.workers.close();
    await this.#placer?.settle();
    await this.#packer.settle();
    await this.#init.pack.discard();
    // A directory we cannot remove stays under tmp/, which is never listed; cleanTemp retries.
    await rm(this.#init.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
