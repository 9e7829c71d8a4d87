/**
 * The restore target: a new managed QEMU started from the checkpoint's recorded VM spec,
 * waiting for an incoming migration. Shared by every restore mode.
 *
 * A drive whose disk state the checkpoint froze (format 1.1) gets a fresh qcow2 overlay over
 * the frozen chain, in `<home>/layers/`: the chain is checked first (each layer's size and
 * metadata hash), so QEMU never starts on a disk that is not the checkpoint's; the VM's hold
 * file then names the overlay, which keeps the chain from gc while the VM runs.
 */

import { throwIfAborted } from "../abort.ts";
import type { CheckpointReader, DiskInfo, LayerInfo } from "../checkpoint/index.ts";
import { DiskLayerError, LayerStore, writeHold } from "../disk/index.ts";
import { InvalidCheckpointError, QemuError, UsageError } from "../errors.ts";
import type { QmpClient } from "../qemu/qmp/index.ts";
import {
  killVm,
  type ManagedVm,
  machineTypesOf,
  parseVmSpec,
  type QemuInstall,
  qemuFor,
  startVm,
  type VmSpec,
  writeOrigin,
} from "../vm/index.ts";
import { signalProcess } from "../vm/process.ts";

/** What a caller keeps of a restored VM once the restore returns. */
export interface RestoredVm {
  readonly name: string;
  readonly stateDir: string;
  readonly pid: number;
  readonly agentSocket: string | null;
}

/**
 * Starts QEMU with the checkpoint's spec and `-incoming defer`, on `qemu` (default: the spec's
 * QEMU). The machine type is the checkpoint's versioned one (format 1.3 `runtime`, else the
 * spec's, which saves pin too); a QEMU without it fails to start, and that failure is then
 * explained as a UsageError naming the machine type (no VM or overlay is left). Once
 * `signal` aborts, QEMU is killed: whatever the restore is doing then fails, and its failure
 * path removes the VM. `onSpawn` is called once QEMU is exec'd (startVm's).
 */
export async function startRestoreTarget(
  home: string,
  reader: CheckpointReader,
  vmName: string | undefined,
  qemu?: QemuInstall,
  signal?: AbortSignal,
  onSpawn?: () => void,
): Promise<ManagedVm> {
  throwIfAborted(signal);
  const recorded = reader.manifest.vm;
  if (typeof recorded !== "object" || recorded === null) {
    throw new InvalidCheckpointError(reader.name, "its manifest has no VM spec");
  }
  const saved = parseVmSpec(vmName === undefined ? recorded : { ...recorded, name: vmName }, {
    baseDir: "/",
  });
  const install = qemuFor(saved, qemu === undefined ? {} : { qemu });
  const machine = reader.manifest.runtime?.machineType ?? saved.machine;
  const spec: VmSpec = { ...saved, machine, qemu: install };
  const store = new LayerStore(home);
  const overlays = await freshOverlays(store, reader);
  try {
    const disks = withOverlays(spec, overlays, store, reader.name);
    const vm = await startVm(home, disks, {
      incoming: "defer",
      ...(onSpawn === undefined ? {} : { onSpawn }),
    }).catch(async (error: unknown) => {
      // Asked only now: listing the machine types runs QEMU once more (~0.1 s on the critical
      // path of every restore), and a QEMU that started has the machine type it was given.
      if (error instanceof QemuError) await refuseMissingMachine(reader, install, machine, error);
      throw error;
    });
    try {
      throwIfAborted(signal);
      signal?.addEventListener("abort", () => signalProcess(vm.pid, "SIGKILL"), { once: true });
      await writeHold(vm.stateDir, overlays);
      // Its next save shares the pages it has not changed with this checkpoint (format 1.2).
      await writeOrigin(vm.stateDir, { checkpoint: reader.name, how: "restored" });
    } catch (error) {
      await killVm(home, vm);
      throw error;
    }
    for (const o of overlays) await store.release(o.active);
    return vm;
  } catch (error) {
    for (const o of overlays) await store.discard(o.active, "qcow2");
    throw error;
  }
}

/**
 * Explains a QEMU that failed to start (`startError`) when it lacks the checkpoint's machine
 * type: it could not have loaded the device state anyway. Returns when it has the type.
 */
async function refuseMissingMachine(
  reader: CheckpointReader,
  install: QemuInstall,
  machine: string,
  startError: QemuError,
): Promise<void> {
  const known = await machineTypesOf(install).catch(() => null);
  if (known === null || known.has(machine)) return;
  const savedBy = reader.manifest.runtime?.qemuVersion;
  const versioned = [...known].filter((m) => /-\d+\.\d+$/.test(m));
  throw new UsageError(
    `Cannot restore checkpoint ${reader.name} with ${install.binary}: it has no machine type ` +
      `"${machine}", which the checkpoint was saved with` +
      (savedBy === undefined ? "" : ` (QEMU ${savedBy})`) +
      `. Restore it with a QEMU that has that machine type (the same or a newer version; ` +
      `SNAPWAKE_QEMU chooses it). This one has ${versioned.slice(0, 3).join(", ")}…`,
    { cause: startError },
  );
}

/** Waits until the destination QEMU has loaded the whole incoming stream. */
export async function waitIncomingDone(qmp: QmpClient): Promise<void> {
  await qmp.waitForMigration(); // failed or cancelled throws QemuError with QEMU's reason
}

/** Checks each frozen chain, then makes one empty overlay per drive over its top layer. */
async function freshOverlays(
  store: LayerStore,
  reader: CheckpointReader,
): Promise<{ drive: number; active: string }[]> {
  const { layers, disks } = reader.manifest;
  const byId = new Map(layers.map((l) => [l.id, l]));
  for (const layer of layers) await checkLayer(store, reader.name, layer);
  const overlays: { drive: number; active: string }[] = [];
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
  overlays: readonly { drive: number; active: string }[],
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
