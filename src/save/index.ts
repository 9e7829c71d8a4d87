export {
  type AccessedBitsOutcome,
  estimateFromAccessedBits,
  recordAccessedBits,
} from "./accessed-bits.ts";
export { type AfterSave, type SaveOptions, type SaveResult, save } from "./save.ts";
