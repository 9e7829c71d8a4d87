/**
 * snapwake as a library: checkpoint running QEMU VMs and restore them.
 *
 *   import { save, restore, CheckpointStore } from "snapwake";
 *   await save({ home, vm: "web-1", name: "web-1@boot" });
 *   const { vm } = await restore({ home, checkpoint: "web-1@boot" }); // auto, as the CLI
 */

export { CheckpointReader, CheckpointStore, describeCheckpoint } from "./checkpoint/index.ts";
export * from "./errors.ts";
export type { Progress, ProgressListener } from "./progress.ts";
export { inspectMigrationStream } from "./qemu/migration/index.ts";
export {
  DEFAULT_RESTORE_MODE,
  type RestoreOptions,
  type RestoreResult,
  restore,
} from "./restore/index.ts";
export { type SaveOptions, type SaveResult, save } from "./save/index.ts";
export { listVms, loadVmSpec, startVm, stopVm } from "./vm/index.ts";
