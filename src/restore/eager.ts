/**
 * Eager restore: a new QEMU is started from the checkpoint's VM spec with `-incoming defer`,
 * and snapwake acts as its migration source, replaying the checkpoint as one precopy stream.
 *
 * Invariants: the manifest, page map and device state are verified before QEMU starts; every
 * chunk is hash-checked before any of its pages is sent, so a corrupt chunk stops the restore
 * (QEMU is killed, its state dir removed) and the guest never runs on a wrong page.
 */
import { connect, type Socket } from "node:net";
import { CheckpointReader, CheckpointStore } from "../checkpoint/index.ts";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import type { ProgressListener } from "../progress.ts";
import { type DeviceState, MigrationStreamWriter } from "../qemu/migration/index.ts";
import { killVm, type ManagedVm, type QemuInstall } from "../vm/index.ts";
import { replayInfo } from "./stream-info.ts";
import { type RestoredVm, startRestoreTarget, waitIncomingDone } from "./target.ts";

/** Progress is reported every 32 MiB of guest RAM sent. */
const PROGRESS_EVERY_PAGES = 8192;

export interface EagerRestoreOptions {
  readonly home: string;
  readonly checkpoint: string;
  /** Name of the new managed VM; default: the saved VM's name. */
  readonly vmName?: string;
  /** The QEMU to restore on; default: the one the checkpoint's VM spec names. */
  readonly qemu?: QemuInstall;
  readonly onProgress?: ProgressListener;
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
}

/** Restores a checkpoint eagerly into a new managed VM, running as it was saved. */
export async function restoreEager(opts: EagerRestoreOptions): Promise<EagerRestoreResult> {
  const started = performance.now();
  const reader = await CheckpointReader.open(
    new CheckpointStore({ home: opts.home }),
    opts.checkpoint,
  );
  try {
    const device = await reader.deviceState();
    const vm = await startRestoreTarget(opts.home, reader, opts.vmName, opts.qemu);
    try {
      const socket = await openIncoming(vm);
      const counts = await sendCheckpoint(reader, socket, device, opts.onProgress);
      await waitIncomingDone(vm.qmp);
      await resumeIfSavedRunning(vm, replayInfo(reader).guestRunning);
      socket.destroy();
      return { vm: summarize(vm), mode: "eager", wallMs: performance.now() - started, ...counts };
    } catch (error) {
      await killVm(opts.home, vm);
      throw error;
    } finally {
      vm.qmp.close();
    }
  } finally {
    await reader.close();
  }
}

async function openIncoming(vm: ManagedVm): Promise<Socket> {
  const path = `${vm.stateDir}/incoming.sock`;
  await vm.qmp.execute("migrate-incoming", { uri: `unix:${path}` });
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

async function sendCheckpoint(
  reader: CheckpointReader,
  socket: Socket,
  device: DeviceState,
  onProgress: ProgressListener | undefined,
): Promise<{ dataPages: number; zeroPages: number; streamBytes: number }> {
  const { configuration, ram } = replayInfo(reader);
  const writer = new MigrationStreamWriter(socket);
  const totalBytes = reader.blocks.reduce((sum, b) => sum + b.lengthBytes, 0);
  let dataPages = 0;
  let zeroPages = 0;
  await writer.header();
  if (configuration.byteLength > 0) await writer.configuration(configuration);
  await writer.ramStart(ram, reader.blocks);
  await writer.beginRamPart(ram);
  await reader.forEachPage((blockIndex, pageIndex, data, fill) => {
    const sent = dataPages + zeroPages;
    if (sent % PROGRESS_EVERY_PAGES === 0) {
      onProgress?.({ phase: "sending", doneBytes: sent * PAGE_SIZE_BYTES, totalBytes });
    }
    if (data === null) {
      zeroPages += 1;
      return writer.zeroPage(blockIndex, pageIndex, fill);
    }
    dataPages += 1;
    return writer.page(blockIndex, pageIndex, data);
  });
  await writer.endRamSection();
  await writer.beginRamEnd(ram);
  await writer.endRamSection();
  await writer.deviceState(device, { withVmdescription: true });
  await writer.flush();
  socket.end();
  return { dataPages, zeroPages, streamBytes: writer.bytesWritten };
}

/** QEMU restores the run state it saved; a guest paused only for its save runs again. */
async function resumeIfSavedRunning(vm: ManagedVm, guestRunning: boolean): Promise<void> {
  if (!guestRunning) return;
  const status = await vm.qmp.execute("query-status", {});
  if (!status.running) await vm.qmp.execute("cont", {});
}

function summarize(vm: ManagedVm): RestoredVm {
  return { name: vm.name, stateDir: vm.stateDir, pid: vm.pid, agentSocket: vm.agentSocket };
}
