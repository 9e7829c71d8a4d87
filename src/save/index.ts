export {
  type AccessedBitsOutcome,
  estimateFromAccessedBits,
  recordAccessedBits,
} from "./accessed-bits.ts";
export {
  AFTER_SAVE,
  type AfterSave,
  DEFAULT_AFTER_SAVE,
  defaultCheckpointName,
} from "./defaults.ts";
export { type SaveOptions, type SaveResult, save } from "./save.ts";
