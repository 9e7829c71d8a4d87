/** Working-set estimation and storage (VEE'11 tracing and write tracking, REAP-style refinement). */

export {
  AccessedBitsReset,
  type AccessedBitsResetReport,
  accessedBitsResetFor,
} from "./page-tables.ts";
export {
  listSources,
  loadWorkingSet,
  removeWorkingSets,
  saveWorkingSet,
  summarizeWorkingSets,
  type WorkingSetSummary,
  workingSetFile,
} from "./store.ts";
export { SETTLE_RULE_DEFAULT, type SettleRule, TraceSettle } from "./trace-window.ts";
export {
  refineWorkingSet,
  type TraceEntry,
  type WorkingSet,
  type WorkingSetPage,
  type WorkingSetSource,
  workingSetFromTrace,
  workingSetFromWrites,
} from "./working-set.ts";
