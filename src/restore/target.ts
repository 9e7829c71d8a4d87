/**
 * The restore target: a new managed QEMU started from the checkpoint's recorded VM spec,
 * waiting for an incoming migration. Shared by every restore mode. QEMU is spawned only once
 * it is known to have the checkpoint's machine type (restore/machine-check.ts).
 *
 * A drive whose disk state the checkpoint froze (format 1.1) gets a fresh qcow2 overlay over
 * the frozen chain, in `<home>/layers/`: the chain is checked first (each layer's size and
 * metadata hash), so QEMU never starts on a disk that is not the checkpoint's; the VM's hold
 * file then names the overlay, which keeps the chain from gc while the VM runs.
 */

import type { Socket } from "node:net";
import { resolve } from "node:path";
import { throwIfAborted } from "../abort.ts";
import type { CheckpointReader, DiskInfo, LayerInfo } from "../checkpoint/index.ts";
// The modules, not the disk barrel: the restore command loads this on its way to QEMU's spawn.
import { DiskLayerError } from "../disk/layer-error.ts";
import { writeHold } from "../disk/layer-gc.ts";
import { LayerStore } from "../disk/layer-store.ts";
import { InvalidCheckpointError } from "../errors.ts";
import type { QmpClient } from "../qemu/qmp/index.ts";
import {
  attachStartingVm,
  killVm,
  type LaunchedVm,
  launchVm,
  type ManagedVm,
  parseVmSpec,
  type QemuInstall,
  qemuFor,
  type StartVmOptions,
  type VmSpec,
  vmPaths,
  writeOrigin,
} from "../vm/index.ts";
import { isQemuAlive, signalProcess } from "../vm/process.ts";
import { checkMachineType, explainStartFailure } from "./machine-check.ts";

/** What a caller keeps of a restored VM once the restore returns. */
export interface RestoredVm {
  readonly name: string;
  readonly stateDir: string;
  readonly pid: number;
  readonly agentSocket: string | null;
}

/** What a restore's caller keeps of `vm`. */
export function restoredVm(vm: ManagedVm): RestoredVm {
  return { name: vm.name, stateDir: vm.stateDir, pid: vm.pid, agentSocket: vm.agentSocket };
}

/** The checkpoint as far as starting its target goes: a reader, or its manifest alone. */
export type TargetCheckpoint = Pick<CheckpointReader, "name" | "manifest">;

/**
 * A launched target's QEMU as the launching process hands it to the one that attaches to it
 * (the CLI to its page server, as one JSON line; ADR 0015).
 */
export interface RestoreHandoff {
  readonly vm: string;
  readonly pid: number;
  readonly overlays: readonly Overlay[];
}

interface Overlay {
  readonly drive: number;
  readonly active: string;
}

/** A target whose QEMU was spawned and not yet attached (launchRestoreTarget). */
export interface LaunchedRestore {
  readonly handoff: RestoreHandoff;
  /** Stops QEMU, removes its VM state and its fresh overlays: the restore did not happen. */
  abandon(): Promise<void>;
  /** Drops this process's claim on the overlays, once the VM's hold file names them. */
  release(): Promise<void>;
}

/** How startRestoreTarget starts QEMU, beyond the checkpoint's spec. */
export interface TargetOptions {
  readonly qemu?: QemuInstall | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Called once QEMU is exec'd (its pid), before its QMP is up. */
  readonly onSpawn?: (pid: number) => void;
  /** Goes to QEMU as its fd 3 (an eager or mapped restore's stream, ADR 0030). */
  readonly incomingSocket?: Socket;
  /** The guest's RAM mapped from this open file (a mapped restore, ADR 0032). */
  readonly ramFile?: StartVmOptions["ramFile"];
  /**
   * The guest's RAM shared with this process (a memfd, or a file in the RAM directory), which
   * an eager restore fills (ADR 0034, 0035).
   */
  readonly sharedRam?: StartVmOptions["sharedRam"];
}

/**
 * How a target QEMU starts: `eager` runs the guest once the stream is loaded, as QEMU's own
 * `-incoming` does; `postcopy` starts it with `-S`, so the postcopy RUN command leaves the
 * guest paused until the restore sends `cont` (after its working set, ADR 0027).
 */
export type TargetStart = "eager" | "postcopy";

/**
 * Starts QEMU with the checkpoint's spec and `-incoming defer`, on `qemu` (default: the spec's
 * QEMU). The machine type is the checkpoint's versioned one (format 1.3 `runtime`, else the
 * spec's, which saves pin too); a QEMU without it is refused with a UsageError naming the
 * machine type before any overlay is made or QEMU spawned (restore/machine-check.ts). Once
 * `signal` aborts, QEMU is killed: whatever the restore is doing then fails, and its failure
 * path removes the VM. See TargetOptions for the rest.
 */
export async function startRestoreTarget(
  start: TargetStart,
  home: string,
  reader: TargetCheckpoint,
  vmName: string | undefined,
  opts: TargetOptions = {},
): Promise<ManagedVm> {
  const { qemu, signal, onSpawn } = opts;
  throwIfAborted(signal);
  const target = await launchTarget(start, home, reader, vmName, qemu, opts);
  onSpawn?.(target.launched.pid);
  try {
    const vm = await explainStart(home, reader, target.install, target.machine, () =>
      target.launched.connect(),
    );
    await adopt(home, reader, vm, target.overlays, signal);
    await target.release();
    return vm;
  } catch (error) {
    await target.abandon();
    throw error;
  }
}

/**
 * The first half of startRestoreTarget, for a postcopy target another process attaches to
 * (attachRestoreTarget with `handoff`). This process must stay alive until then: it is
 * QEMU's parent and holds the overlays.
 */
export async function launchRestoreTarget(
  home: string,
  checkpoint: TargetCheckpoint,
  vmName: string | undefined,
  qemu?: QemuInstall,
): Promise<LaunchedRestore> {
  const target = await launchTarget("postcopy", home, checkpoint, vmName, qemu);
  const { spec, pid } = target.launched;
  return {
    handoff: { vm: spec.name, pid, overlays: target.overlays },
    abandon: target.abandon,
    release: target.release,
  };
}

/**
 * The second half, in the process that serves the restore: connects to the QEMU `handoff`
 * names (explaining a missing machine type as startRestoreTarget does), then as there. On
 * failure it kills that QEMU; the launching process removes the rest (`abandon`).
 */
export async function attachRestoreTarget(
  home: string,
  reader: CheckpointReader,
  handoff: RestoreHandoff,
  qemu?: QemuInstall,
  signal?: AbortSignal,
): Promise<ManagedVm> {
  const { install, machine } = restoreSpec(reader, handoff.vm, qemu);
  let vm: ManagedVm | undefined;
  try {
    throwIfAborted(signal);
    vm = await explainStart(home, reader, install, machine, () =>
      attachStartingVm(home, handoff.vm, handoff.pid),
    );
    await adopt(home, reader, vm, handoff.overlays, signal);
    return vm;
  } catch (error) {
    if (vm !== undefined) await killVm(home, vm);
    else if (await isQemuAlive(handoff.pid, vmPaths(resolve(home), handoff.vm).pidFile))
      signalProcess(handoff.pid, "SIGKILL"); // that QEMU, not a process that took its pid
    throw error;
  }
}

/** Checks a RestoreHandoff read from another process; throws what is wrong with it. */
export function parseHandoff(line: string): RestoreHandoff {
  const o = JSON.parse(line) as Partial<RestoreHandoff>;
  const ok =
    typeof o.vm === "string" &&
    Number.isSafeInteger(o.pid) &&
    (o.pid ?? 0) > 0 &&
    Array.isArray(o.overlays) &&
    o.overlays.every((x) => Number.isSafeInteger(x?.drive) && typeof x?.active === "string");
  if (!ok) throw new Error(`Not a restore handoff: ${line.slice(0, 200)}`);
  return o as RestoreHandoff;
}

/** The spec a restore starts QEMU with, the QEMU and the machine type. */
function restoreSpec(checkpoint: TargetCheckpoint, vmName: string | undefined, qemu?: QemuInstall) {
  const recorded = checkpoint.manifest.vm;
  if (typeof recorded !== "object" || recorded === null) {
    throw new InvalidCheckpointError(checkpoint.name, "its manifest has no VM spec");
  }
  const saved = parseVmSpec(vmName === undefined ? recorded : { ...recorded, name: vmName }, {
    baseDir: "/",
  });
  const install = qemuFor(saved, qemu === undefined ? {} : { qemu });
  const machine = checkpoint.manifest.runtime?.machineType ?? saved.machine;
  const spec: VmSpec = { ...saved, machine, qemu: install };
  return { spec, install, machine };
}

/** The machine type checked, fresh overlays over the frozen disks, then QEMU spawned on them. */
async function launchTarget(
  start: TargetStart,
  home: string,
  checkpoint: TargetCheckpoint,
  vmName: string | undefined,
  qemu?: QemuInstall,
  how: Pick<TargetOptions, "incomingSocket" | "ramFile" | "sharedRam"> = {},
) {
  const { spec, install, machine } = restoreSpec(checkpoint, vmName, qemu);
  await checkMachineType(home, checkpoint, install, machine); // before any overlay or QEMU
  const store = new LayerStore(home);
  const overlays = await freshOverlays(store, checkpoint);
  const discard = async () => {
    for (const o of overlays) await store.discard(o.active, "qcow2");
  };
  let launched: LaunchedVm;
  try {
    const disks = withOverlays(spec, overlays, store, checkpoint.name);
    launched = await launchVm(home, disks, {
      incoming: "defer",
      paused: start === "postcopy",
      ...(how.incomingSocket === undefined ? {} : { incomingSocket: how.incomingSocket }),
      ...(how.ramFile === undefined ? {} : { ramFile: how.ramFile }),
      ...(how.sharedRam === undefined ? {} : { sharedRam: how.sharedRam }),
    });
  } catch (error) {
    await discard();
    throw error;
  }
  return {
    launched,
    install,
    machine,
    overlays,
    abandon: async () => {
      await launched.abandon();
      await discard();
    },
    release: async () => {
      for (const o of overlays) await store.release(o.active);
    },
  };
}

/** Runs `start`; a failure of a QEMU lacking the checkpoint's machine type is explained. */
async function explainStart(
  home: string,
  checkpoint: TargetCheckpoint,
  install: QemuInstall,
  machine: string,
  start: () => Promise<ManagedVm>,
): Promise<ManagedVm> {
  return start().catch(async (error: unknown) => {
    await explainStartFailure(home, checkpoint, install, machine, error);
    throw error;
  });
}

/** The VM is the restore's: killed on `signal`, holding its overlays, remembering its origin. */
async function adopt(
  home: string,
  checkpoint: TargetCheckpoint,
  vm: ManagedVm,
  overlays: readonly Overlay[],
  signal?: AbortSignal,
): Promise<void> {
  try {
    throwIfAborted(signal);
    signal?.addEventListener("abort", () => signalProcess(vm.pid, "SIGKILL"), { once: true });
    await writeHold(vm.stateDir, overlays);
    // Its next save shares the pages it has not changed with this checkpoint (format 1.2).
    await writeOrigin(vm.stateDir, { checkpoint: checkpoint.name, how: "restored" });
  } catch (error) {
    await killVm(home, vm);
    throw error;
  }
}

/** Waits until the destination QEMU has loaded the whole incoming stream. */
export async function waitIncomingDone(qmp: QmpClient): Promise<void> {
  await qmp.waitForMigration(); // failed or cancelled throws QemuError with QEMU's reason
}

/** Checks each frozen chain, then makes one empty overlay per drive over its top layer. */
async function freshOverlays(store: LayerStore, checkpoint: TargetCheckpoint): Promise<Overlay[]> {
  const { layers, disks } = checkpoint.manifest;
  const byId = new Map(layers.map((l) => [l.id, l]));
  for (const layer of layers) await checkLayer(store, checkpoint.name, layer);
  const overlays: Overlay[] = [];
  try {
    for (const disk of disks) {
      const top = topOf(disk, byId);
      overlays.push({ drive: disk.drive, active: await store.createOverlay(top) });
    }
  } catch (error) {
    for (const o of overlays) await store.discard(o.active, "qcow2");
    throw error;
  }
  return overlays;
}

async function checkLayer(store: LayerStore, checkpoint: string, layer: LayerInfo): Promise<void> {
  try {
    await (await store.openLayer(layer)).close();
  } catch (error) {
    if (!(error instanceof DiskLayerError)) throw error;
    throw new InvalidCheckpointError(
      checkpoint,
      `frozen disk layer ${layer.id} ("${layer.file}") cannot be used: ${error.reason}`,
      { cause: error },
    );
  }
}

function topOf(disk: DiskInfo, byId: Map<string, LayerInfo>): LayerInfo {
  const top = byId.get(disk.layers[0] ?? "");
  if (top === undefined)
    throw new RangeError("the manifest's disks were checked against its layers");
  return top;
}

/** The spec with each frozen drive on its new overlay (writable qcow2). */
function withOverlays(
  spec: VmSpec,
  overlays: readonly Overlay[],
  store: LayerStore,
  checkpoint: string,
): VmSpec {
  const stray = overlays.find((o) => o.drive >= spec.disks.length);
  if (stray !== undefined) {
    throw new InvalidCheckpointError(checkpoint, `its disk ${stray.drive} is not in its VM spec`);
  }
  const disks = spec.disks.map((disk, i) => {
    const o = overlays.find((x) => x.drive === i);
    if (o === undefined) return disk;
    return {
      ...disk,
      path: store.pathOf(o.active, "qcow2"),
      format: "qcow2" as const,
      readonly: false,
    };
  });
  return { ...spec, disks };
}
