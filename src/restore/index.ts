export type { EagerRestoreResult } from "./eager.ts";
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
  saveAndContinue,
  type TraceWindowChoice,
} from "./profile.ts";
export { listRestoreRecords, type RestoreSummary } from "./records.ts";
export {
  DEFAULT_RESTORE_MODE,
  type RestoreMode,
  type RestoreOptions,
  type RestoreResult,
  restore,
} from "./restore.ts";
export type { RestoredVm } from "./target.ts";
