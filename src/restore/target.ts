/**
 * The restore target: a new managed QEMU started from the checkpoint's recorded VM spec,
 * waiting for an incoming migration. Shared by every restore mode.
 */
import type { CheckpointReader } from "../checkpoint/index.ts";
import { InvalidCheckpointError } from "../errors.ts";
import type { QmpClient } from "../qemu/qmp/index.ts";
import { type ManagedVm, parseVmSpec, startVm } from "../vm/index.ts";

/** What a caller keeps of a restored VM once the restore returns. */
export interface RestoredVm {
  readonly name: string;
  readonly stateDir: string;
  readonly pid: number;
  readonly agentSocket: string | null;
}

/** Starts QEMU with the checkpoint's spec and `-incoming defer`. */
export async function startRestoreTarget(
  home: string,
  reader: CheckpointReader,
  vmName: string | undefined,
): Promise<ManagedVm> {
  const recorded = reader.manifest.vm;
  if (typeof recorded !== "object" || recorded === null) {
    throw new InvalidCheckpointError(reader.name, "its manifest has no VM spec");
  }
  const spec = parseVmSpec(vmName === undefined ? recorded : { ...recorded, name: vmName }, {
    baseDir: "/",
  });
  return startVm(home, spec, { incoming: "defer" });
}

/** Waits until the destination QEMU has loaded the whole incoming stream. */
export async function waitIncomingDone(qmp: QmpClient): Promise<void> {
  await qmp.waitForMigration(); // failed or cancelled throws QemuError with QEMU's reason
}
