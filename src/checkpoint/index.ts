/**
 * Public surface of src/checkpoint: the checkpoint format (docs/format.md) and the local store
 * (docs/adr/0003-store-layout-and-atomicity.md). Other folders import only this file. Its
 * rooms, each importing only the ones before it (the tidy test checks it):
 *
 *   format/  the bytes on disk, no I/O: constants, manifest, index, pack header, codecs, hashes
 *   read/    opening and verifying a checkpoint: reader, page walk, chunk workers, describe
 *   store/   the directory of checkpoints: list, remove, gc; file I/O; the digest cache
 *   write/   saving one: writer, chunk packer, pack writer, commit, shared pages, relayout
 */
export { type ChunkCodec, CodecId } from "./format/codec.ts";
export type { DeviceState } from "./format/device-file.ts";
export { FORMAT_MAJOR, FORMAT_MINOR, formatVersion } from "./format/format.ts";
export type { JsonObject, JsonValue } from "./format/json-value.ts";
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
} from "./format/manifest.ts";
export { CHECKPOINT_NAME_PATTERN, checkCheckpointName } from "./format/names.ts";
export type { PageLocation } from "./format/page-map.ts";
export type { RamBlockInput } from "./format/ram-blocks.ts";
export { type CheckpointListing, manifestOf } from "./read/checkpoint-files.ts";
export { ChunkWorkers, type DecodeInput } from "./read/chunk-workers.ts";
export {
  type CheckpointDescription,
  describeCheckpoint,
  formatCheckpoint,
} from "./read/describe.ts";
export type { PageVisitor } from "./read/page-walk.ts";
export { storeReadThrottle, throttledRead } from "./read/read-throttle.ts";
export {
  CheckpointReader,
  type DiskRefInfo,
  type StoredStream,
  type VerifyReport,
} from "./read/reader.ts";
export { PageDigests } from "./store/page-digests.ts";
export {
  CheckpointStore,
  type InvalidListing,
  type RemoveReport,
  type StoreOptions,
} from "./store/store.ts";
export { CheckpointWriteError, type StoreIo, type WritableFile } from "./store/store-io.ts";
export type { DiskBlockSource } from "./write/disk-pages.ts";
export {
  type LayoutPage,
  type RelayoutOptions,
  type RelayoutResult,
  relayoutCheckpoint,
} from "./write/relayout.ts";
export { type SharedPages, shareCheckpoint, shareStore } from "./write/shared-pages.ts";
export { type BeginOptions, beginCheckpoint, CheckpointWriter } from "./write/writer.ts";
