/**
 * snapwake as a library: checkpoint running QEMU VMs and restore them.
 *
 *   import { save, restore, CheckpointStore } from "snapwake";
 *   await save({ home, vm: "web-1", name: "web-1@boot" });
 *   const { vm } = await restore({ home, checkpoint: "web-1@boot" }); // auto, as the CLI
 *   // or return once the guest runs, a detached page server filling it (as the CLI does):
 *   const { vm: name, log } = await restoreDetached({ home, checkpoint: "web-1@boot" });
 */

export { CheckpointReader, CheckpointStore, describeCheckpoint } from "./checkpoint/index.ts";
export * from "./errors.ts";
export type { Progress, ProgressListener } from "./progress.ts";
export { inspectMigrationStream } from "./qemu/migration/index.ts";
export {
  DEFAULT_RESTORE_MODE,
  type DetachedRestore,
  type DetachedRestoreOptions,
  type RestoreOptions,
  type RestoreResult,
  restore,
  restoreDetached,
} from "./restore/index.ts";
export {
  DEFAULT_AFTER_SAVE,
  defaultCheckpointName,
  type SaveOptions,
  type SaveResult,
  save,
} from "./save/index.ts";
export { listVms, loadVmSpec, startVm, stopVm } from "./vm/index.ts";
