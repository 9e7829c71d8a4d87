export type { EagerRestoreResult } from "./eager.ts";
export { type RestoreMode, type RestoreOptions, type RestoreResult, restore } from "./restore.ts";
export type { RestoredVm } from "./target.ts";
