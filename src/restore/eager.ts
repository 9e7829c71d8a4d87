/**
 * Eager restore: a new QEMU is started from the checkpoint's VM spec with `-incoming defer`,
 * and snapwake acts as its migration source, replaying the checkpoint as one precopy stream.
 *
 * QEMU starts on the verified manifest alone, while this process opens and checks the page map
 * and the device state (QEMU's start and the checkpoint's opening overlap, as in a lazy
 * restore: ADR 0015, 0030). The target's life around the stream (the loopback pair, QEMU's
 * spawn, `migrate-incoming`, the wait for `completed`, the kill on failure) is
 * restoreByPrecopy's, which the mapped restore (mapped.ts) shares.
 *
 * Invariants: the manifest, page map and device state are verified before any byte is sent to
 * QEMU, and a failure there kills the QEMU already started; every chunk is hash-checked before
 * any of its pages is sent, so a corrupt chunk stops the restore (QEMU is killed, its state dir
 * removed) and the guest never runs on a wrong page. The caller (restore.ts) holds the
 * checkpoint for reading, so the manifest QEMU started from is the one the reader opens.
 */
import type { Socket } from "node:net";
import { CheckpointReader, CheckpointStore, ChunkWorkers } from "../checkpoint/index.ts";
import { manifestOf } from "../checkpoint/read/checkpoint-files.ts";
import { RESTORE_EAGER_WORKERS } from "../limits.ts";
import type { ProgressListener } from "../progress.ts";
import type { DeviceState } from "../qemu/migration/index.ts";
import { killVm, type ManagedVm, QEMU_INCOMING_FD, type QemuInstall } from "../vm/index.ts";
import type { AccessedBitsResetReport } from "../wss/index.ts";
import { resetFor } from "./accessed-bits.ts";
import { sendCheckpoint } from "./eager-send.ts";
import { incomingPair } from "./incoming.ts";
import { replayInfo } from "./stream-info.ts";
import {
  type RestoredVm,
  restoredVm,
  startRestoreTarget,
  type TargetCheckpoint,
  type TargetOptions,
  waitIncomingDone,
} from "./target.ts";

export interface EagerRestoreOptions {
  readonly home: string;
  readonly checkpoint: string;
  /** Name of the new managed VM; default: the saved VM's name. */
  readonly vmName?: string;
  /** The QEMU to restore on; default: the one the checkpoint's VM spec names. */
  readonly qemu?: QemuInstall;
  /**
   * Default true: the page-table pages the checkpoint's save proved leave with their Accessed
   * bits cleared, so the VM's next save estimates what it touched since this restore
   * (docs/accessed-bits.md). false sends every page exactly as stored.
   */
  readonly resetAccessedBits?: boolean;
  readonly onProgress?: ProgressListener;
  /** Kills QEMU (the restore then fails and cleans up); restore.ts turns it into its reason. */
  readonly signal?: AbortSignal;
}

export interface EagerRestoreResult {
  readonly vm: RestoredVm;
  readonly mode: "eager";
  /** From the call until QEMU reported the incoming migration completed. */
  readonly wallMs: number;
  readonly dataPages: number;
  readonly zeroPages: number;
  /** Migration stream bytes sent to QEMU. */
  readonly streamBytes: number;
  readonly accessedBits: AccessedBitsResetReport;
}

/** Restores a checkpoint eagerly into a new managed VM, running as it was saved. */
export async function restoreEager(opts: EagerRestoreOptions): Promise<EagerRestoreResult> {
  const started = performance.now();
  // They load while QEMU starts, and decode chunks while this thread feeds QEMU.
  const workers = ChunkWorkers.start(RESTORE_EAGER_WORKERS);
  try {
    return await restoreWith(opts, workers, started);
  } finally {
    await workers.close();
  }
}

async function restoreWith(
  opts: EagerRestoreOptions,
  workers: ChunkWorkers,
  started: number,
): Promise<EagerRestoreResult> {
  const target = { name: opts.checkpoint, manifest: await manifestOf(opts.home, opts.checkpoint) };
  const opening = openCheckpoint(opts);
  opening.catch(() => undefined); // awaited below, after QEMU's spawn
  try {
    const { vm, sent } = await restoreByPrecopy(opts, target, undefined, async (socket) => {
      const { reader, device, reset } = await opening;
      const counts = await sendCheckpoint(reader, socket, device, {
        workers,
        pageEdit: reset,
        ...(opts.onProgress === undefined ? {} : { onProgress: opts.onProgress }),
      });
      return { guestRunning: replayInfo(reader).guestRunning, sent: counts };
    });
    return {
      vm,
      mode: "eager",
      wallMs: performance.now() - started,
      ...sent,
      accessedBits: (await opening).reset.report(),
    };
  } finally {
    await opening.then(
      ({ reader }) => reader.close(),
      () => undefined,
    );
  }
}

/**
 * A restore target fed one precopy stream over the loopback pair (ADR 0030), for eager and
 * mapped restores: QEMU started from `target` with its end as fd 3 (and `ramFile`), then
 * `migrate-incoming fd:3`; `feed` writes the stream on our end and ends it; then QEMU's
 * `completed`, and a guest saved running runs. Any failure, `feed`'s included, destroys our end
 * first (QEMU's reset then has no socket to reach) and kills QEMU.
 */
export async function restoreByPrecopy<T>(
  opts: Pick<EagerRestoreOptions, "home" | "vmName" | "qemu" | "signal">,
  target: TargetCheckpoint,
  ramFile: TargetOptions["ramFile"],
  feed: (socket: Socket) => Promise<{ readonly guestRunning: boolean; readonly sent: T }>,
): Promise<{ vm: RestoredVm; sent: T }> {
  const pair = await incomingPair();
  let vm: ManagedVm;
  try {
    vm = await startRestoreTarget("eager", opts.home, target, opts.vmName, {
      qemu: opts.qemu,
      signal: opts.signal,
      incomingSocket: pair.qemuEnd,
      ...(ramFile === undefined ? {} : { ramFile }),
    });
  } catch (error) {
    pair.ours.destroy();
    throw error;
  } finally {
    pair.qemuEnd.destroy(); // QEMU has its own copy: its exit must end the connection
  }
  const socket = pair.ours;
  try {
    await vm.qmp.execute("migrate-incoming", { uri: `fd:${QEMU_INCOMING_FD}` });
    const { guestRunning, sent } = await feed(socket);
    await waitIncomingDone(vm.qmp);
    await resumeIfSavedRunning(vm, guestRunning);
    return { vm: restoredVm(vm), sent };
  } catch (error) {
    socket.destroy();
    await killVm(opts.home, vm);
    throw error;
  } finally {
    socket.destroy();
    vm.qmp.close();
  }
}

export interface Opened {
  readonly reader: CheckpointReader;
  readonly device: DeviceState;
  readonly reset: Awaited<ReturnType<typeof resetFor>>;
}

/** The checkpoint opened and checked: its page map, device state and page-table edits. */
export async function openCheckpoint(opts: EagerRestoreOptions): Promise<Opened> {
  const reader = await CheckpointReader.open(
    new CheckpointStore({ home: opts.home }),
    opts.checkpoint,
  );
  try {
    const device = await reader.deviceState();
    const reset = await resetFor(opts, reader);
    return { reader, device, reset };
  } catch (error) {
    await reader.close();
    throw error;
  }
}

/** QEMU restores the run state it saved; a guest paused only for its save runs again. */
async function resumeIfSavedRunning(vm: ManagedVm, guestRunning: boolean): Promise<void> {
  if (!guestRunning) return;
  const status = await vm.qmp.execute("query-status", {});
  if (!status.running) await vm.qmp.execute("cont", {});
}
