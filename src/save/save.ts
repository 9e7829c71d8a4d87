/**
 * Saves a running managed VM into a checkpoint: QEMU migrates (precopy) into snapwake's
 * receiver over a Unix socket; pages go straight into the checkpoint writer as they arrive.
 * Writable disks are frozen (disk-freeze.ts): before the migration, so pages equal to a disk
 * block become disk references, and again in the pre-switchover pause, so the checkpoint's
 * disk state is the one of its memory snapshot.
 *
 * A guest that is to run on after the save has QEMU write its stream to a spool file instead
 * (spool.ts): it runs again as soon as QEMU has written it, as after QEMU's own save to a file,
 * and the stream is read from the file while it runs (ADR 0033).
 *
 * Invariants: a checkpoint is listed only after commit() verified it; any failure (QEMU died,
 * a stream we cannot parse, a full disk, the caller's AbortSignal) stops the stream, aborts
 * the writer (its temp directory goes) so nothing is listed, cancels the migration if QEMU
 * still lives, and resumes the source VM if it was running before.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { abortError, throwIfAborted, untilAborted } from "../abort.ts";
import {
  type CheckpointListing,
  CheckpointStore,
  type SharedPages,
  shareStore,
} from "../checkpoint/index.ts";
import type { DiskDuplicates } from "../disk/index.ts";
import { InvalidCheckpointError, NotFoundError, QemuError, UsageError } from "../errors.ts";
import type { ProgressListener } from "../progress.ts";
import { readMigrationStream, type StreamSummary } from "../qemu/migration/index.ts";
import { StoreLock } from "../store/lock.ts";
import { assertNever } from "../util/assert-never.ts";
import { type ManagedVm, openVm, readOrigin, writeOrigin } from "../vm/index.ts";
import { saveWorkingSet, workingSetFromWrites } from "../wss/index.ts";
import { type AccessedBitsOutcome, recordAccessedBits } from "./accessed-bits.ts";
import { type AfterSave, DEFAULT_AFTER_SAVE, defaultCheckpointName } from "./defaults.ts";
import { DiskFreezer } from "./disk-freeze.ts";
import { enterSaveMode } from "./live-safety.ts";
import { acceptOne, listen, waitMigrationCompleted } from "./migrate.ts";
import { CheckpointSink } from "./sink.ts";
import {
  cancelMigration,
  prepareSourceForSave,
  resumeAfterFailure,
  resumeIfWasRunning,
} from "./source.ts";
import { explainSpoolFailure, readSpool, spoolPath, spoolUri } from "./spool.ts";

export type { AfterSave } from "./defaults.ts";

export interface SaveOptions {
  readonly home: string;
  /**
   * The managed VM to save: its name, or a ManagedVm this process already holds (QEMU serves
   * one QMP client at a time, so a holder must lend its connection).
   */
  readonly vm: string | ManagedVm;
  /** The checkpoint's name in the store (default: defaultCheckpointName of the VM's). */
  readonly name?: string;
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
   * pauses the guest anyway (live-safety.ts, ADR 0011): SaveResult.pausedBecause says so.
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
  /**
   * Default true: a guest that continues runs again as soon as QEMU has written its stream to a
   * spool file (spool.ts, ADR 0033), when the store's disk has room. false: it stays paused
   * until the checkpoint is listed, which ends the save sooner when the running guest would
   * compete with it for the CPU.
   */
  readonly spool?: boolean;
  /** Default true: keep the "accessed-bits" working set, walked once the VM is back (docs/accessed-bits.md). */
  readonly accessedBits?: boolean;
  readonly onProgress?: ProgressListener;
  /**
   * Cancels the save: the migration is cancelled, nothing is listed, no temp file stays, and
   * the guest runs again if it ran before (also after --stop-first or in the pre-switchover
   * pause). The save rejects with the signal's reason (an InterruptedError by default).
   */
  readonly signal?: AbortSignal;
}

export interface SaveResult {
  readonly checkpoint: CheckpointListing;
  readonly stream: StreamSummary;
  /** From the migrate command to the checkpoint being listed. */
  readonly wallMs: number;
  /**
   * From the save's start to the guest running again, or null when it did not run again before
   * the checkpoint was listed (it was not running, `after` was not "continue", or the disk had
   * no room to spool the stream).
   */
  readonly resumedMs: number | null;
  /** Migration stream bytes received from QEMU. */
  readonly streamBytes: number;
  /** Pages QEMU re-sent during the save, kept as the checkpoint's "write-set" working set. */
  readonly writeSetPages: number;
  /** The checkpoint this one shares pages with, or null for a full checkpoint. */
  readonly parent: string | null;
  /** The guest ran during the save; else why a live save paused it (live-safety.ts). */
  readonly live: boolean;
  readonly pausedBecause: string | null;
  /** The accessed-bit estimate kept with the checkpoint; null when not asked for. */
  readonly accessedBits: AccessedBitsOutcome | null;
}

/** SaveOptions with the checkpoint's name resolved. */
export type NamedSave = SaveOptions & { readonly name: string };

/** Checkpoints a managed VM. See the module comment for the failure guarantees. */
export async function save(given: SaveOptions): Promise<SaveResult> {
  const vmName = typeof given.vm === "string" ? given.vm : given.vm.name;
  const opts = { ...given, name: given.name ?? defaultCheckpointName(vmName) };
  const signal = opts.signal;
  throwIfAborted(signal);
  const store = new CheckpointStore({ home: opts.home });
  await refuseExistingName(store, opts.name);
  const lock = await StoreLock.acquire(opts.home, {
    command: "save",
    mode: "shared",
    uses: [{ checkpoint: opts.name, access: "write" }],
  });
  try {
    return await saveLocked(opts, store, lock);
  } finally {
    await lock.release();
  }
}

async function saveLocked(
  opts: NamedSave,
  store: CheckpointStore,
  lock: StoreLock,
): Promise<SaveResult> {
  const signal = opts.signal;
  const borrowed = typeof opts.vm !== "string";
  const vm = typeof opts.vm === "string" ? await openVm(opts.home, opts.vm) : opts.vm;
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), "snapwake-save-"));
  const socketPath = join(dir, "migration.sock");
  const server = createServer();
  const accepting = new AbortController();
  let wasRunning = false;
  let sink: CheckpointSink | null = null;
  /** The stream's source being read: QEMU's socket, or the spool file. */
  let input: Readable | null = null;
  let spooled: string | null = null;
  let resumedMs: number | null = null;
  let receiving: Promise<StreamSummary> | null = null;
  let duplicates: DiskDuplicates | null = null;
  let shared: SharedPages | null = null;
  // A step the signal cut short keeps running: the failure path waits for each (after
  // cancelling the migration) so nothing of this save still writes once it has rejected.
  const running: Promise<unknown>[] = [];
  const step = <T>(work: Promise<T>) => {
    running.push(work.catch(() => undefined));
    return untilAborted(work, signal);
  };
  try {
    await listen(server, socketPath);
    const parent = await step(resolveParent(store, opts, vm));
    // Read while this save runs: rm of it waits for the save (store/lock.ts).
    if (parent !== null) await lock.add([{ checkpoint: parent, access: "read" }]);
    shared = await step(indexShared(store, opts, parent));
    const freezer = await DiskFreezer.forVm(opts.home, vm);
    const mode = await step(enterSaveMode(vm.qmp, vm.spec.accel, opts.live ?? true));
    const stoppedForSave = mode.stoppedGuest;
    wasRunning = stoppedForSave; // from here on a failure resumes the guest it paused
    const runsDuringSave = await step(
      prepareSourceForSave(vm.qmp, { freezeAtSwitchover: freezer !== null }),
    );
    wasRunning = runsDuringSave || stoppedForSave;
    if (freezer !== null) {
      opts.onProgress?.({ phase: "freezing disks", doneBytes: 0, totalBytes: null });
      await step(freezer.freeze());
      await step(freezer.seal());
      if (opts.diskDuplicates !== false) duplicates = await step(freezer.duplicates());
    }
    const version = await step(vm.qmp.execute("query-version", {}));
    const sources = { duplicates, shared };
    const sinkNow = new CheckpointSink(store, opts, vm, sources, wasRunning, version);
    sink = sinkNow;
    const after = opts.after ?? DEFAULT_AFTER_SAVE;
    const atSwitchover = runsDuringSave ? freezer : null;
    const spool =
      after === "continue" && wasRunning && opts.spool !== false
        ? await step(spoolPath(store, vm.spec.memoryMiB * 2 ** 20))
        : null;
    let stream: StreamSummary;
    if (spool !== null) {
      spooled = spool;
      await step(vm.qmp.execute("migrate", { uri: spoolUri(spool, version.qemu) }));
      const spooling = waitMigrationCompleted(vm.qmp, atSwitchover, opts.onProgress, "spooling");
      await step(spooling).catch(async (error: unknown) => {
        throw await explainSpoolFailure(error, spool);
      });
      // Everything saved is in the file: what the guest does from now on is not.
      await step(resumeIfWasRunning(vm.qmp, true));
      resumedMs = performance.now() - started;
      const file = readSpool(spool);
      input = file;
      receiving = readMigrationStream(file, sinkNow);
      stream = await step(receiving);
      await rm(spool, { force: true }); // its room goes back before the commit needs it
    } else {
      const connection = acceptOne(server, vm.qmp, accepting.signal);
      await step(vm.qmp.execute("migrate", { uri: `unix:${socketPath}` }));
      const accepted = await step(connection);
      input = accepted;
      receiving = readMigrationStream(accepted, sinkNow, {
        returnPath: (bytes) => void accepted.write(bytes),
      });
      const completed = waitMigrationCompleted(vm.qmp, atSwitchover, opts.onProgress);
      running.push(completed.catch(() => undefined)); // Promise.all would not wait for it
      [stream] = await step(Promise.all([receiving, completed]));
    }
    const writer = sinkNow.writer;
    if (writer === null) throw new QemuError("The migration stream ended before its RAM blocks");
    if (freezer !== null) {
      await step(freezer.seal());
      const { layers, disks } = await step(freezer.chains());
      writer.setDisks(layers, disks);
    }
    opts.onProgress?.({ phase: "verifying", doneBytes: stream.streamBytes, totalBytes: null });
    throwIfAborted(signal);
    const checkpoint = await writer.commit();
    sinkNow.committed = true;
    if (signal?.aborted) {
      // Interrupted while it was being published: it goes again, so nothing is listed.
      await lock.release();
      await store.remove(opts.name).catch(() => undefined);
      throw abortError(signal);
    }
    const writeSetPages = sinkNow.writes.length;
    if (writeSetPages > 0)
      await saveWorkingSet(opts.home, opts.name, workingSetFromWrites(sinkNow.writes));
    input.destroy();
    if (opts.after !== "stop")
      await writeOrigin(vm.stateDir, { checkpoint: opts.name, how: "saved" });
    // A spooled save's guest runs already; QMP need not even be there any more.
    if (resumedMs === null) await afterSave(vm, after, wasRunning);
    const wallMs = performance.now() - started;
    const accessedBits = opts.accessedBits === false ? null : await estimate(opts);
    return {
      checkpoint,
      stream,
      wallMs,
      resumedMs,
      streamBytes: stream.streamBytes,
      writeSetPages,
      parent: shared?.parent?.name ?? null,
      live: mode.live,
      pausedBecause: mode.pausedBecause,
      accessedBits,
    };
  } catch (error) {
    accepting.abort();
    // QEMU first: closing our end first would let it fail the migration on its own before
    // the cancel arrives ("failed" instead of "cancelled", seen in the pre-switchover pause).
    await cancelMigration(vm.qmp);
    // The stream stops before the writer goes, so no page is being written while it aborts.
    input?.destroy();
    await receiving?.catch(() => undefined);
    // E.g. the disk freeze at switchover, still writing the VM's hold file when interrupted.
    await Promise.all(running);
    if (sink !== null && !sink.committed)
      await sink.writer?.abort(error instanceof Error ? error : undefined);
    await resumeAfterFailure(vm.qmp, wasRunning);
    throw error;
  } finally {
    accepting.abort();
    server.close();
    await duplicates?.close();
    await shared?.discard(); // a no-op once the writer adopted it
    await rm(dir, { recursive: true, force: true });
    if (spooled !== null) await rm(spooled, { force: true });
    if (!borrowed) vm.qmp.close();
  }
}

/** The pages this save shares (format 1.2): its parent's, and with `wholeStore` the store's. */
async function indexShared(
  store: CheckpointStore,
  opts: SaveOptions,
  parent: string | null,
): Promise<SharedPages | null> {
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
      return assertNever(after, "after-save action");
  }
}

/** The accessed-bit estimate of the checkpoint just listed (never throws). */
function estimate(opts: NamedSave): Promise<AccessedBitsOutcome> {
  opts.onProgress?.({ phase: "estimating", doneBytes: 0, totalBytes: null });
  return recordAccessedBits(opts.home, opts.name);
}
