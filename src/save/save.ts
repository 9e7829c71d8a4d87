/**
 * Saves a running managed VM into a checkpoint: QEMU migrates (precopy) into snapwake's
 * receiver over a Unix socket; pages go straight into the checkpoint writer as they arrive.
 * Writable disks are frozen (disk-freeze.ts): before the migration, so pages equal to a disk
 * block become disk references, and again in the pre-switchover pause, so the checkpoint's
 * disk state is the one of its memory snapshot.
 *
 * Invariants: a checkpoint is listed only after commit() verified it; any failure (QEMU died,
 * a stream we cannot parse, a full disk) aborts the writer so nothing is listed, cancels the
 * migration if QEMU still lives, and resumes the source VM if it was running before.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  beginCheckpoint,
  type CheckpointListing,
  CheckpointStore,
  type CheckpointWriter,
  type SharedPages,
  shareStore,
} from "../checkpoint/index.ts";
import type { DiskDuplicates } from "../disk/index.ts";
import { InvalidCheckpointError, NotFoundError, QemuError, UsageError } from "../errors.ts";
import { PAGE_SIZE_BYTES, SAVE_CONNECT_TIMEOUT_MS, WORKING_SET_PAGES_MAX } from "../limits.ts";
import type { ProgressListener } from "../progress.ts";
import {
  type DeviceState,
  type RamBlock,
  type RamSectionInfo,
  readMigrationStream,
  type StreamSummary,
} from "../qemu/migration/index.ts";
import type { QmpClient } from "../qemu/qmp/index.ts";
import { type ManagedVm, openVm, readOrigin, writeOrigin } from "../vm/index.ts";
import { saveWorkingSet, workingSetFromWrites } from "../wss/index.ts";
import { DiskFreezer } from "./disk-freeze.ts";
import { enterSaveMode, runtimeOf } from "./live-safety.ts";
import { continueMigration, prepareSourceForSave, resumeIfWasRunning } from "./source.ts";

/** What the source VM does after a successful save. */
export type AfterSave = "continue" | "pause" | "stop";

export interface SaveOptions {
  readonly home: string;
  /**
   * The managed VM to save: its name, or a ManagedVm this process already holds (QEMU serves
   * one QMP client at a time, so a holder must lend its connection).
   */
  readonly vm: string | ManagedVm;
  /** The checkpoint's name in the store. */
  readonly name: string;
  /** Default "continue": the VM keeps running. "stop" quits it after the checkpoint is listed. */
  readonly after?: AfterSave;
  readonly compressionLevel?: number;
  /**
   * Default true: pages equal to a block of the VM's frozen disk are stored as references.
   * false still freezes the disks (the checkpoint needs their state) but stores every page:
   * for measuring what the references save.
   */
  readonly diskDuplicates?: boolean;
  /**
   * Default true: a live (precopy) save; the guest runs until the final pass. false pauses the
   * guest for the whole save: one pass, no write set. On QEMU < 9.0 under TCG a live save
   * pauses the guest anyway (live-safety.ts, ADR 0008): SaveResult.pausedBecause says so.
   * "unsafe" saves live even there: only for showing what the pause prevents (bench soak).
   */
  readonly live?: boolean | "unsafe";
  /**
   * The checkpoint to save incrementally from (format 1.2): pages whose content it holds are
   * shared with it, not stored again. Default: the VM's origin (the checkpoint it was restored
   * from or last saved to) when that is still listed. null: a full checkpoint.
   */
  readonly parent?: string | null;
  /**
   * Also share pages with every other checkpoint in the store (newest first, within
   * SHARED_INDEX_PAGES_MAX), so identical pages across the store are stored once. The price:
   * removing a checkpoint frees its pack only once no later checkpoint reads any of it.
   */
  readonly wholeStore?: boolean;
  readonly onProgress?: ProgressListener;
}

export interface SaveResult {
  readonly checkpoint: CheckpointListing;
  readonly stream: StreamSummary;
  /** From the migrate command to the checkpoint being listed. */
  readonly wallMs: number;
  /** Migration stream bytes received from QEMU. */
  readonly streamBytes: number;
  /** Pages QEMU re-sent during the save, kept as the checkpoint's "write-set" working set. */
  readonly writeSetPages: number;
  /** The checkpoint this one shares pages with, or null for a full checkpoint. */
  readonly parent: string | null;
  /** The guest ran during the save; else why a live save paused it (live-safety.ts). */
  readonly live: boolean;
  readonly pausedBecause: string | null;
}

/** Checkpoints a managed VM. See the module comment for the failure guarantees. */
export async function save(opts: SaveOptions): Promise<SaveResult> {
  const store = new CheckpointStore({ home: opts.home });
  await refuseExistingName(store, opts.name);
  const borrowed = typeof opts.vm !== "string";
  const vm = typeof opts.vm === "string" ? await openVm(opts.home, opts.vm) : opts.vm;
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), "snapwake-save-"));
  const socketPath = join(dir, "migration.sock");
  const server = createServer();
  let wasRunning = false;
  let writer: CheckpointWriter | null = null;
  let duplicates: DiskDuplicates | null = null;
  let shared: SharedPages | null = null;
  try {
    await listen(server, socketPath);
    shared = await indexShared(store, opts, vm);
    const freezer = await DiskFreezer.forVm(opts.home, vm);
    const liveAsked = opts.live ?? true;
    const mode = await enterSaveMode(vm.qmp, vm.spec.accel, liveAsked);
    const stoppedForSave = mode.stoppedGuest;
    const runsDuringSave = await prepareSourceForSave(vm.qmp, {
      freezeAtSwitchover: freezer !== null,
    });
    wasRunning = runsDuringSave || stoppedForSave;
    if (freezer !== null) {
      opts.onProgress?.({ phase: "freezing disks", doneBytes: 0, totalBytes: null });
      await freezer.freeze();
      await freezer.seal();
      if (opts.diskDuplicates !== false) duplicates = await freezer.duplicates();
    }
    const connection = acceptOne(server, vm.qmp);
    await vm.qmp.execute("migrate", { uri: `unix:${socketPath}` });
    const socket = await connection;
    const sink = new CheckpointSink(store, opts, vm, { duplicates, shared }, wasRunning);
    const receiving = readMigrationStream(socket, sink, {
      returnPath: (bytes) => void socket.write(bytes),
    });
    const atSwitchover = runsDuringSave ? freezer : null;
    const [stream] = await Promise.all([receiving, waitMigrationCompleted(vm.qmp, atSwitchover)]);
    writer = sink.writer;
    if (writer === null) throw new QemuError("The migration stream ended before its RAM blocks");
    if (freezer !== null) {
      await freezer.seal();
      const { layers, disks } = await freezer.chains();
      writer.setDisks(layers, disks);
    }
    opts.onProgress?.({ phase: "verifying", doneBytes: stream.streamBytes, totalBytes: null });
    const checkpoint = await writer.commit();
    writer = null;
    const writeSetPages = sink.writes.length;
    if (writeSetPages > 0)
      await saveWorkingSet(opts.home, opts.name, workingSetFromWrites(sink.writes));
    socket.destroy();
    if (opts.after !== "stop")
      await writeOrigin(vm.stateDir, { checkpoint: opts.name, how: "saved" });
    await afterSave(vm, opts.after ?? "continue", wasRunning);
    return {
      checkpoint,
      stream,
      wallMs: performance.now() - started,
      streamBytes: stream.streamBytes,
      writeSetPages,
      parent: shared?.parent?.name ?? null,
      live: mode.live,
      pausedBecause: mode.pausedBecause,
    };
  } catch (error) {
    await writer?.abort(error instanceof Error ? error : undefined);
    await cancelAndResume(vm, wasRunning);
    throw error;
  } finally {
    server.close();
    await duplicates?.close();
    await shared?.discard(); // a no-op once the writer adopted it
    await rm(dir, { recursive: true, force: true });
    if (!borrowed) vm.qmp.close();
  }
}

/** Receives parsed stream records and feeds the checkpoint writer (created once blocks are known). */
class CheckpointSink {
  writer: CheckpointWriter | null = null;
  #configuration = new Uint8Array(0);
  #machine = "";
  #pages = 0;
  /** Per block, per page: 0 unseen, 1 seen once, 2 re-sent (recorded in writes). */
  #seen: Uint8Array[] = [];
  /** Pages QEMU sent again in a later precopy round, in re-send order: the write set. */
  readonly writes: { block: number; page: number }[] = [];
  readonly #store: CheckpointStore;
  readonly #opts: SaveOptions;
  readonly #vm: ManagedVm;
  readonly #sources: { duplicates: DiskDuplicates | null; shared: SharedPages | null };
  /** The guest ran when the save began: a restore resumes it even if QEMU saved it paused. */
  readonly #guestRunning: boolean;

  constructor(
    store: CheckpointStore,
    opts: SaveOptions,
    vm: ManagedVm,
    sources: { duplicates: DiskDuplicates | null; shared: SharedPages | null },
    guestRunning: boolean,
  ) {
    this.#guestRunning = guestRunning;
    this.#store = store;
    this.#opts = opts;
    this.#vm = vm;
    this.#sources = sources;
  }

  configuration(config: { machine: string; raw: Uint8Array }): void {
    this.#configuration = config.raw.slice();
    this.#machine = config.machine;
  }

  async ramBlocks(blocks: readonly RamBlock[], ram: RamSectionInfo): Promise<void> {
    if (this.writer !== null)
      throw new QemuError("The migration stream listed its RAM blocks twice");
    const version = await this.#vm.qmp.execute("query-version", {});
    const { duplicates, shared } = this.#sources;
    this.writer = await beginCheckpoint(this.#store, {
      name: this.#opts.name,
      vm: { ...this.#vm.spec, machine: this.#machine || this.#vm.spec.machine },
      qemu: { version: version.qemu, package: version.package, args: this.#vm.args },
      stream: {
        configuration: this.#configuration,
        machine: this.#machine,
        ram,
        guestRunning: this.#guestRunning,
      },
      ...(this.#opts.compressionLevel === undefined
        ? {}
        : { compressionLevel: this.#opts.compressionLevel }),
      ...(duplicates === null ? {} : { diskBlocks: duplicates }),
      ...(shared === null ? {} : { shared }),
      ...runtimeOf(version.qemu, this.#machine),
    });
    this.writer.setRamBlocks(blocks);
    this.#seen = blocks.map((b) => new Uint8Array(Math.ceil(b.lengthBytes / PAGE_SIZE_BYTES)));
  }

  page(blockIndex: number, pageIndex: number, data: Uint8Array): void | Promise<void> {
    this.#tick(blockIndex, pageIndex);
    return this.#need().putPage(blockIndex, pageIndex, data);
  }

  zeroPage(blockIndex: number, pageIndex: number, fill: number): void {
    this.#tick(blockIndex, pageIndex);
    this.#need().putZero(blockIndex, pageIndex, fill);
  }

  deviceState(state: DeviceState): void {
    this.#need().setDeviceState(state);
  }

  #tick(blockIndex: number, pageIndex: number): void {
    this.#noteWrite(blockIndex, pageIndex);
    this.#pages += 1;
    if (this.#pages % 8192 === 0) {
      const doneBytes = this.#pages * PAGE_SIZE_BYTES;
      this.#opts.onProgress?.({ phase: "receiving", doneBytes, totalBytes: null });
    }
  }

  /** A page seen before was dirtied during the save (VEE'11 / write tracking). */
  #noteWrite(block: number, page: number): void {
    const seen = this.#seen[block];
    if (seen === undefined) return; // the reader rejects unknown blocks before we get here
    const state = seen[page] ?? 0;
    if (state === 1 && this.writes.length < WORKING_SET_PAGES_MAX)
      this.writes.push({ block, page });
    if (state < 2) seen[page] = state + 1;
  }

  #need(): CheckpointWriter {
    if (this.writer === null)
      throw new QemuError("The migration stream sent pages before its RAM blocks");
    return this.writer;
  }
}

/** The pages this save shares (format 1.2): its parent's, and with `wholeStore` the store's. */
async function indexShared(
  store: CheckpointStore,
  opts: SaveOptions,
  vm: ManagedVm,
): Promise<SharedPages | null> {
  const parent = await resolveParent(store, opts, vm);
  const wholeStore = opts.wholeStore === true;
  if (parent === null && !wholeStore) return null;
  const phase = `indexing ${parent === null ? "" : `parent ${parent}`}${wholeStore ? " and the store" : ""}`;
  opts.onProgress?.({ phase, doneBytes: 0, totalBytes: null });
  return shareStore(store, parent, { wholeStore }).catch((error: unknown) => {
    if (!(error instanceof InvalidCheckpointError)) throw error;
    throw new InvalidCheckpointError(
      error.checkpoint,
      `${error.reason}; this save would share its pages: save with --full (parent: null), ` +
        "and rm it",
      { cause: error },
    );
  });
}

/** The parent a save shares pages with: the one asked for, else the VM's origin if listed. */
async function resolveParent(
  store: CheckpointStore,
  opts: SaveOptions,
  vm: ManagedVm,
): Promise<string | null> {
  if (opts.parent === null) return null;
  if (opts.parent !== undefined) {
    await store.stat(opts.parent); // NotFoundError / InvalidCheckpointError name it
    return opts.parent;
  }
  const origin = await readOrigin(vm.stateDir);
  if (origin === null) return null;
  const listed = await store.stat(origin.checkpoint).then(
    () => true,
    () => false, // removed or damaged since: a full checkpoint instead
  );
  return listed ? origin.checkpoint : null;
}

async function refuseExistingName(store: CheckpointStore, name: string): Promise<void> {
  try {
    await store.stat(name);
  } catch (error) {
    if (error instanceof NotFoundError) return;
    throw error;
  }
  throw new UsageError(`A checkpoint named "${name}" exists already: choose another name or rm it`);
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
}

/** Pauses the guest for a non-live save; true if it was running. */
/** The first connection on the server, or a QemuError if QEMU dies or never connects. */
function acceptOne(server: Server, qmp: QmpClient): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new QemuError("QEMU did not connect to the migration socket in time")),
      SAVE_CONNECT_TIMEOUT_MS,
    );
    server.once("connection", (socket) => {
      clearTimeout(timer);
      resolve(socket);
    });
    qmp.closed.then(() => {
      clearTimeout(timer);
      reject(new QemuError("QEMU exited before the migration started"));
    });
  });
}

/**
 * Resolves when QEMU reports the migration completed; failed or cancelled throws. With a
 * freezer, the migration pauses in pre-switchover (vCPUs stopped): the disks are frozen there,
 * at exactly the memory snapshot point, and the migration continues.
 */
async function waitMigrationCompleted(qmp: QmpClient, freezer: DiskFreezer | null): Promise<void> {
  if (freezer !== null) {
    await qmp.waitForMigration({ until: (info) => info.status === "pre-switchover" });
    await freezer.freeze();
    await continueMigration(qmp);
  }
  await qmp.waitForMigration();
}

async function afterSave(vm: ManagedVm, after: AfterSave, wasRunning: boolean): Promise<void> {
  switch (after) {
    case "continue":
      return resumeIfWasRunning(vm.qmp, wasRunning);
    case "pause":
      return;
    case "stop":
      await vm.qmp.execute("quit", {});
      return;
    default:
      return assertNeverAfter(after);
  }
}

function assertNeverAfter(x: never): never {
  throw new UsageError(`Unknown --after value ${String(x)}`);
}

async function cancelAndResume(vm: ManagedVm, wasRunning: boolean): Promise<void> {
  if (vm.qmp.isClosed()) return;
  try {
    await vm.qmp.execute("migrate_cancel", {});
    await resumeIfWasRunning(vm.qmp, wasRunning);
  } catch {
    // QEMU died while we cleaned up; the save error already says what went wrong.
  }
}
