/** Lazy and partial restore: snapwake as QEMU's postcopy migration source (ADR 0005). */
export type { ConnectChannel } from "./channel.ts";
export type {
  TraceWindowEnd,
  TraceWindowOptions,
  TraceWindowReport,
} from "./demand-window.ts";
export {
  type PostcopyRestoreOptions,
  type PostcopyRestoreResult,
  restorePostcopy,
} from "./lazy.ts";
export {
  type PageRef,
  RESTORE_RECORD_VERSION,
  type RestoreRecord,
  restoresDir,
} from "./record.ts";
export type { FillReport, PostcopyMode } from "./report.ts";
export type { LatencySummary, TraceRecord } from "./trace.ts";
