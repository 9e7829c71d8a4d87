/**
 * Public surface of src/checkpoint: checkpoint format 1.2 (docs/format.md) and the local store
 * (docs/adr/0003-store-layout-and-atomicity.md).
 */
export type { CheckpointListing } from "./checkpoint-files.ts";
export { ChunkWorkers, type DecodeInput } from "./chunk-workers.ts";
export { type ChunkCodec, CodecId } from "./codec.ts";
export { type CheckpointDescription, describeCheckpoint, formatCheckpoint } from "./describe.ts";
export type { DeviceState } from "./device-file.ts";
export type { DiskBlockSource } from "./disk-pages.ts";
export { FORMAT_MAJOR, FORMAT_MINOR, formatVersion } from "./format.ts";
export type { JsonObject, JsonValue } from "./json-value.ts";
export type {
  CheckpointStatistics,
  ChunksInfo,
  DiskInfo,
  FileRef,
  LayerInfo,
  LayoutInfo,
  Manifest,
  ParentInfo,
  RamBlockInfo,
  RuntimeInfo,
  SharedPackInfo,
} from "./manifest.ts";
export { CHECKPOINT_NAME_PATTERN, checkCheckpointName } from "./names.ts";
export type { PageLocation } from "./page-map.ts";
export type { PageVisitor } from "./page-walk.ts";
export type { RamBlockInput } from "./ram-blocks.ts";
export { throttledRead } from "./read-throttle.ts";
export {
  CheckpointReader,
  type DiskRefInfo,
  type StoredStream,
  type VerifyReport,
} from "./reader.ts";
export {
  type LayoutPage,
  type RelayoutOptions,
  type RelayoutResult,
  relayoutCheckpoint,
} from "./relayout.ts";
export { type SharedPages, shareCheckpoint, shareStore } from "./shared-pages.ts";
export {
  CheckpointStore,
  type InvalidListing,
  type RemoveReport,
  type StoreOptions,
} from "./store.ts";
export { CheckpointWriteError, type StoreIo, type WritableFile } from "./store-io.ts";
export { type BeginOptions, beginCheckpoint, CheckpointWriter } from "./writer.ts";
