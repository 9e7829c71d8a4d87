/**
 * Lazy and partial restore (VEE'11): QEMU is started from the checkpoint's spec, snapwake is
 * its postcopy migration source. Partial sends the working set right after the postcopy
 * package, with the guest held paused until it is in the stream (ADR 0027); lazy sends no page
 * before the guest runs. Either way the call returns once the guest runs, with `fill`
 * settling when every non-zero page is placed and QEMU reported the migration completed.
 *
 * Invariants: the working set is read and verified before the guest runs, so a corrupt chunk
 * in it fails this call with no guest having run; a failure after that rejects `fill`, with
 * the guest stopped and QEMU killed; no wrong page is ever sent (only checked pages are).
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  CheckpointReader,
  CheckpointStore,
  ChunkWorkers,
  PageDigests,
} from "../../checkpoint/index.ts";
import { QemuError, UsageError } from "../../errors.ts";
import {
  PAGE_SIZE_BYTES,
  PRELUDE_EARLY_CHUNKS,
  RESTORE_CHUNK_CACHE_CHUNKS,
  RESTORE_POSTCOPY_WORKERS,
  RESTORE_PROGRESS_EVERY_PAGES,
  RESTORE_RUN_TIMEOUT_MS,
  RESTORE_STATUS_POLL_MS,
} from "../../limits.ts";
import type { ProgressListener } from "../../progress.ts";
import type { DeviceState, RamSectionInfo } from "../../qemu/migration/index.ts";
import type { RunState } from "../../qemu/qmp/index.ts";
import { asError } from "../../util/index.ts";
import { killVm, type ManagedVm, type QemuInstall } from "../../vm/index.ts";
import type { AccessedBitsReset } from "../../wss/index.ts";
import { resetFor } from "../accessed-bits.ts";
import { replayInfo } from "../stream-info.ts";
import {
  attachRestoreTarget,
  type RestoredVm,
  type RestoreHandoff,
  restoredVm,
  startRestoreTarget,
} from "../target.ts";
import { type ConnectChannel, type MigrationChannel, openPostcopyChannel } from "./channel.ts";
import { ChunkCache } from "./chunk-cache.ts";
import { WorkerChunkLoader } from "./chunk-loader.ts";
import { DemandWindow, type TraceWindowOptions } from "./demand-window.ts";
import { abandon, type Session, serveFill, watchSession } from "./fill.ts";
import { FillOrder } from "./fill-order.ts";
import { PageAlone } from "./page-alone.ts";
import { PageServer } from "./page-server.ts";
import { Placement } from "./placement.ts";
import { boundedPrelude, sendPrelude, type WorkingSetPlan } from "./prelude.ts";
import type { PageRef } from "./record.ts";
import type { FillReport, PostcopyMode } from "./report.ts";
import { SyncReads } from "./sync-reads.ts";

export interface PostcopyRestoreOptions {
  readonly home: string;
  readonly checkpoint: string;
  readonly mode: PostcopyMode;
  /** Name of the new managed VM; default: the saved VM's name. */
  readonly vmName?: string;
  /** The QEMU to restore on; default: the one the checkpoint's VM spec names. */
  readonly qemu?: QemuInstall;
  /**
   * The target QEMU, already launched by another process (launchRestoreTarget, e.g. the CLI
   * while this page server started; ADR 0015): this restore attaches to it instead of
   * starting one. Its VM name wins over `vmName`.
   */
  readonly launched?: Promise<RestoreHandoff>;
  /** Default true: the accessed-bit reset, as for eager (EagerRestoreOptions). */
  readonly resetAccessedBits?: boolean;
  /**
   * Pages to prefetch, in priority order; required for "partial", refused for "lazy". A set
   * in first-touch order (some page has a `firstMs` above 0: a trace) is cut after its first
   * PRELUDE_PAGES_MAX pages (with chunk neighbours); the rest of it goes first in the fill,
   * beside the guest (docs/restore.md, "A bounded prelude"). A set without times has no order
   * to cut by: all of it goes before the guest runs.
   */
  readonly workingSet?: readonly (PageRef & { readonly firstMs?: number })[];
  /**
   * "chunk" (default): a working-set page brings every page stored in its chunk (Halite's
   * locality block: read and verified anyway, and a lazy trace misses the neighbours its
   * locality pushes placed). "page": only the listed pages.
   */
  readonly prefetchUnit?: "page" | "chunk";
  /**
   * Background fill starts this long after the guest runs (QEMU reports it; ADR 0022);
   * requests are served from the start. For profiling restores: the trace then holds the
   * guest's working set rather than only the pages it touched before the background placed
   * them. Default 0.
   */
  readonly backgroundDelayMs?: number;
  /**
   * Profiling: pure demand paging (no locality push, no background fill) from the moment the
   * guest runs until its request trace settles or `maxMs` passes (docs/restore.md, "The trace
   * window"), so the trace sees every page the guest touches. FillReport.traceWindow says when
   * it closed and why.
   */
  readonly traceWindow?: TraceWindowOptions;
  readonly onProgress?: ProgressListener;
  /** Write the restore record (report and trace) under `<home>/restores`; default true. */
  readonly record?: boolean;
  /** Opens the migration socket (default: connect to it); tests wrap it to break the channel. */
  readonly connectChannel?: ConnectChannel;
  /** Kills QEMU (the restore or its fill then fails and cleans up); see restore.ts. */
  readonly signal?: AbortSignal;
}

export interface PostcopyRestoreResult {
  readonly vm: RestoredVm;
  readonly mode: PostcopyMode;
  /** From the call until the guest was seen running. */
  readonly wallMs: number;
  /** Pages sent before the guest ran (the working set). */
  readonly pagesPrefetched: number;
  /** The run state QEMU reported when the call returned ("running" unless saved otherwise). */
  readonly status: RunState;
  /** Settles when the fill has finished (or rejects with why it could not). */
  readonly fill: Promise<FillReport>;
}

/** Restores a checkpoint lazily (or partially) into a new managed VM; see the module doc. */
export async function restorePostcopy(
  opts: PostcopyRestoreOptions,
): Promise<PostcopyRestoreResult> {
  const startedMs = performance.now();
  const startedAt = new Date();
  checkMode(opts);
  // Started by their first job, a push's load after RUN (ADR 0021): a thread's start takes
  // ~50–75 ms of a core that QEMU's start and the prelude need; the prelude decodes here.
  const workers = ChunkWorkers.onFirstJob(RESTORE_POSTCOPY_WORKERS);
  let reader: CheckpointReader;
  try {
    reader = await CheckpointReader.open(new CheckpointStore({ home: opts.home }), opts.checkpoint);
  } catch (error) {
    await workers.close();
    throw error;
  }
  let handedOver = false;
  // One gate for every read a request makes on this thread (ADR 0020, 0029).
  const syncReads = new SyncReads();
  const loader = new WorkerChunkLoader(reader, workers, { syncReads });
  const alone = new PageAlone(reader, syncReads);
  // Read beside the start: until then a request's chunk is checked whole (ADR 0019, 0020).
  PageDigests.load(reader, opts.home).then(
    (digests) => {
      loader.useDigests(digests);
      alone.useDigests(digests);
    },
    () => undefined,
  );
  const closeAll = async (): Promise<void> => {
    syncReads.close();
    await loader.close();
    await reader.close();
  };
  try {
    // QEMU first: it takes ~0.1 s to come up for QMP, in which this process reads the device
    // state and builds the fill order instead of waiting for it.
    let spawned = (): void => undefined;
    const qemuSpawned = new Promise<void>((resolve) => {
      spawned = resolve;
    });
    const { home, vmName, qemu, signal } = opts;
    const target =
      opts.launched === undefined
        ? startRestoreTarget("postcopy", home, reader, vmName, {
            qemu,
            signal,
            onSpawn: spawned,
          })
        : opts.launched.then((handoff) => {
            spawned();
            return attachRestoreTarget(home, reader, handoff, qemu, signal);
          });
    target.then(spawned, spawned); // awaited below, after the preparation
    let ready: Prepared;
    try {
      ready = await prepare(opts, reader, loader, qemuSpawned);
    } catch (error) {
      await target.then(
        (vm) => killVm(opts.home, vm),
        () => undefined,
      );
      throw error;
    }
    const { device, configuration, ram, placement, order, plan, cache, reset } = ready;
    const blockNames = reader.blocks.map((b) => b.name);
    const vm = await target;
    let channel: MigrationChannel | undefined;
    try {
      channel = await openPostcopyChannel(vm, opts.connectChannel, reset);
      const window = opts.traceWindow === undefined ? null : new DemandWindow(opts.traceWindow);
      // The fill waits for the guest to run: until then QEMU loads the devices, asking for
      // pages one by one, and the fill's pushes and decodes would take its cores (ADR 0022).
      const guestRuns = Promise.withResolvers<void>();
      const server = new PageServer({
        source: reader,
        blockNames,
        placement,
        order,
        cache,
        alone,
        writer: channel.writer,
        out: channel.out,
        backgroundAfter: guestRuns.promise.then(() => sleep(opts.backgroundDelayMs ?? 0)),
        ...(window === null ? {} : { demandOnly: window }),
        ...progressReporter(opts.onProgress, order.fillPages),
      });
      const session: Session = {
        home: opts.home,
        checkpoint: opts.checkpoint,
        mode: opts.mode,
        vm,
        channel,
        server,
        placement,
        order,
        cache,
        window,
        reset,
        startedMs,
        startedAt,
        record: opts.record ?? true,
        close: closeAll,
      };
      const shut = watchSession(session);
      const prelude = await sendPrelude({
        source: reader,
        blockNames,
        blockBytes: reader.blocks.map((b) => b.lengthBytes),
        configuration,
        ram,
        device,
        channel,
        placement,
        cache,
        plan,
      });
      server.begin();
      window?.start();
      const fill = serveFill(session, prelude, shut, performance.now() - startedMs);
      fill.catch(() => undefined); // the caller may never look; the rejection is still theirs
      handedOver = true;
      // The target started paused (-S), so RUN left the guest stopped; it runs from here, with
      // its working set in the stream before it (ADR 0027). Requests are served by now: QEMU's
      // main loop may wait on a page before it takes the command.
      const running = vm.qmp
        .execute("cont", {}, { timeoutMs: RESTORE_RUN_TIMEOUT_MS })
        .then(() => waitRunning(vm, fill))
        .finally(() => guestRuns.resolve());
      const status = await running.catch(async (error: unknown) => {
        // Stop the fill (it kills QEMU) and report its error if it had one: it says more.
        server.fail(asError(error));
        throw (await fill.then(() => null, asError)) ?? error;
      });
      return {
        vm: restoredVm(vm),
        mode: opts.mode,
        wallMs: performance.now() - startedMs,
        pagesPrefetched: prelude.pagesPrefetched,
        status,
        fill,
      };
    } catch (error) {
      if (!handedOver) {
        if (channel === undefined) await killVm(opts.home, vm);
        else await abandon({ home: opts.home, vm, channel });
      }
      throw error;
    }
  } finally {
    if (!handedOver) await closeAll();
  }
}

/** What the prelude and the page server need beside QEMU, built while QEMU starts. */
interface Prepared {
  readonly device: DeviceState;
  readonly configuration: Uint8Array;
  readonly ram: RamSectionInfo;
  readonly placement: Placement;
  readonly order: FillOrder;
  readonly plan: WorkingSetPlan;
  readonly cache: ChunkCache;
  readonly reset: AccessedBitsReset;
}

async function prepare(
  opts: PostcopyRestoreOptions,
  reader: CheckpointReader,
  loader: WorkerChunkLoader,
  qemuSpawned: Promise<void>,
): Promise<Prepared> {
  const device = await reader.deviceState();
  const reset = await resetFor(opts, reader);
  // The rest holds the thread for tens of ms: not before QEMU is on its way.
  await qemuSpawned;
  const { configuration, ram } = replayInfo(reader);
  const placement = new Placement(reader.blocks.map((b) => b.pageCount));
  const order = new FillOrder(reader, placement);
  checkMode(opts);
  const cache = new ChunkCache(loader, RESTORE_CHUNK_CACHE_CHUNKS);
  const unit = opts.prefetchUnit ?? "chunk";
  const { plan, fillFirst } = boundedPrelude(reader, placement, order, opts.workingSet ?? [], unit);
  order.putFirst(fillFirst);
  // The workers decode the first working-set chunks while QEMU comes up for QMP.
  for (const chunk of plan.chunks.slice(0, PRELUDE_EARLY_CHUNKS)) cache.prefetch(chunk, "prelude");
  return { device, configuration, ram, placement, order, plan, cache, reset };
}

/** The working set given (or not) fits the mode: checked before QEMU starts, and again after. */
function checkMode(opts: PostcopyRestoreOptions): void {
  const ws = opts.workingSet;
  if (opts.mode === "lazy" && ws !== undefined && ws.length > 0)
    throw new UsageError("Cannot prefetch a working set in a lazy restore: use mode partial");
  if (opts.mode === "partial" && ws === undefined)
    throw new UsageError("Cannot restore partially without a working set: use mode lazy");
}

/**
 * Polls query-status until the guest left `inmigrate`; a failed fill ends the wait at once.
 * QEMU's RESUME event (the guest runs) cuts a poll interval short: the caller's "running" is
 * on the restore's critical path. A guest saved paused sends none; the poll sees it.
 */
async function waitRunning(vm: ManagedVm, fill: Promise<FillReport>): Promise<RunState> {
  const failed = fill.then(() => null, asError);
  const deadline = performance.now() + RESTORE_RUN_TIMEOUT_MS;
  let resumed = false;
  let wake = (): void => undefined;
  const off = vm.qmp.on("RESUME", () => {
    resumed = true;
    wake();
  });
  try {
    for (;;) {
      const status = await Promise.race([vm.qmp.execute("query-status"), failed]);
      if (status instanceof Error) throw status;
      if (status !== null && status.status !== "inmigrate") return status.status;
      if (performance.now() > deadline) {
        throw new QemuError(
          `The restored guest did not start within ${RESTORE_RUN_TIMEOUT_MS} ms of the postcopy ` +
            "package (QEMU still loading device state)",
        );
      }
      if (resumed) continue; // it came during the query: ask again at once
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, RESTORE_STATUS_POLL_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    off();
  }
}

function progressReporter(
  listener: ProgressListener | undefined,
  fillPages: number,
): { onSent?: (placed: number) => void } {
  if (listener === undefined) return {};
  let next = 0;
  return {
    onSent: (placed) => {
      if (placed < next) return;
      next = placed + RESTORE_PROGRESS_EVERY_PAGES;
      const totalBytes = fillPages * PAGE_SIZE_BYTES;
      listener({
        phase: "filling",
        doneBytes: Math.min(placed * PAGE_SIZE_BYTES, totalBytes),
        totalBytes,
      });
    },
  };
}
