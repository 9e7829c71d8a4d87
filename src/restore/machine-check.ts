/**
 * The one owner of "this QEMU lacks the checkpoint's machine type": a restore runs QEMU with
 * exactly the checkpoint's versioned machine type (e.g. `pc-i440fx-10.0`), which a QEMU that
 * lacks it could neither start nor load the device state of.
 *
 * - Before QEMU starts (`checkMachineType`, every restore path, before any overlay is made):
 *   the install's machine types come from the store's cache (vm/machine-types.ts), so a restore
 *   whose QEMU was asked before pays no exec. A cached list without the type is not trusted to
 *   refuse: QEMU is asked again first (a wrapper binary keeps its identity when the QEMU it
 *   runs changes), so the refusal is always QEMU's own answer.
 * - After a failed start (`explainStartFailure`): a list cached as having the type may be stale
 *   the other way, so QEMU is asked afresh, and a QEMU without the type gets the same refusal,
 *   with QEMU's failure as its cause. Costs nothing unless QEMU failed.
 */
import { QemuError, UsageError } from "../errors.ts";
import { machineTypes, type QemuInstall } from "../vm/index.ts";
import type { TargetCheckpoint } from "./target.ts";

/** Throws UsageError when `install` has no machine type `machine`; QemuError if unaskable. */
export async function checkMachineType(
  home: string,
  checkpoint: TargetCheckpoint,
  install: QemuInstall,
  machine: string,
): Promise<void> {
  let known = await machineTypes(home, install);
  if (!known.names.has(machine) && !known.asked) {
    known = await machineTypes(home, install, { ask: true });
  }
  if (!known.names.has(machine)) throw refusal(checkpoint, install, machine, known.names);
}

/**
 * Replaces `startError` (QEMU did not start) with the refusal when that QEMU lacks the machine
 * type; returns otherwise (the caller rethrows `startError`).
 */
export async function explainStartFailure(
  home: string,
  checkpoint: TargetCheckpoint,
  install: QemuInstall,
  machine: string,
  startError: unknown,
): Promise<void> {
  if (!(startError instanceof QemuError)) return;
  const known = await machineTypes(home, install, { ask: true }).catch(() => null);
  if (known === null || known.names.has(machine)) return;
  throw refusal(checkpoint, install, machine, known.names, startError);
}

function refusal(
  checkpoint: TargetCheckpoint,
  install: QemuInstall,
  machine: string,
  known: ReadonlySet<string>,
  cause?: Error,
): UsageError {
  const savedBy = checkpoint.manifest.runtime?.qemuVersion;
  const versioned = [...known].filter((m) => /-\d+\.\d+$/.test(m));
  return new UsageError(
    `Cannot restore checkpoint ${checkpoint.name} with ${install.binary}: it has no machine ` +
      `type "${machine}", which the checkpoint was saved with` +
      (savedBy === undefined ? "" : ` (QEMU ${savedBy})`) +
      `. Restore it with a QEMU that has that machine type (the same or a newer version; ` +
      `SNAPWAKE_QEMU chooses it). This one has ${versioned.slice(0, 3).join(", ")}…`,
    cause === undefined ? undefined : { cause },
  );
}
