export type { DetachedRestore } from "./detached.ts";
export { type DetachedRestoreOptions, restoreDetached } from "./detached-restore.ts";
export { type ServeOptions, serveDetached } from "./detached-server.ts";
export type { EagerRestoreResult } from "./eager.ts";
export type { MappedRestoreResult } from "./mapped.ts";
export {
  type ConnectChannel,
  type FillReport,
  type LatencySummary,
  type PageRef,
  type PostcopyMode,
  type PostcopyRestoreResult,
  RESTORE_RECORD_VERSION,
  type RestoreRecord,
  restoresDir,
  type TraceRecord,
  type TraceWindowEnd,
  type TraceWindowOptions,
  type TraceWindowReport,
} from "./postcopy/index.ts";
export {
  type ContinueResult,
  type LearnedWorkingSet,
  learnFromTrace,
  type ProfileOptions,
  type ProfileResult,
  profile,
  type RelaidOut,
  relayoutByWorkingSet,
  saveAndContinue,
  type TraceWindowChoice,
} from "./profile.ts";
export { listRestoreRecords, type RestoreSummary } from "./records.ts";
export {
  DEFAULT_RESTORE_MODE,
  RESTORE_MODES,
  type RestoreMode,
  type RestoreOptions,
  type RestoreResult,
  restore,
  storedWorkingSet,
} from "./restore.ts";
export type { RestoredVm } from "./target.ts";
