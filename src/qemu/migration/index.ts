/**
 * Public surface of src/qemu/migration: the QEMU 7.2 migration stream reader (save), writer
 * and postcopy command encoders (restore), the return-path codec, `stream inspect`, and a
 * reader for a postcopy-preempt channel (captured streams only).
 */
export {
  type ByteRange,
  buildPostcopyPackage,
  discardRangesPerCommandMax,
  encodeCommand,
  encodeOpenReturnPath,
  encodePackaged,
  encodePing,
  encodePostcopyAdvise,
  encodePostcopyListen,
  encodePostcopyRamDiscard,
  encodePostcopyRun,
  sectionsWithoutEof,
} from "./commands.ts";
export {
  Command,
  type CommandCode,
  FILE_MAGIC,
  FILE_VERSION,
  RAM_SECTION_IDSTR,
  RAM_SECTION_VERSION,
  RamFlag,
  ReturnPathType,
  Section,
  ShutStatus,
} from "./constants.ts";
export {
  type BlockInspection,
  formatInspection,
  inspectMigrationStream,
  type StreamInspection,
} from "./inspect.ts";
export {
  type PreemptChannelSummary,
  type PreemptVisitor,
  readPreemptChannel,
} from "./preempt-channel.ts";
export type {
  BlockSummary,
  DeviceSectionName,
  DeviceSectionsSource,
  DeviceState,
  RamBlock,
  RamSectionInfo,
  StreamSummary,
  StreamVisitor,
} from "./records.ts";
export {
  encodePong,
  encodeReqPages,
  encodeReqPagesId,
  encodeShut,
  type ReturnPathMessage,
  ReturnPathReader,
} from "./return-path.ts";
export { type ReadStreamOptions, readMigrationStream } from "./stream-reader.ts";
export {
  type ByteSink,
  type MaybePromise,
  MigrationStreamWriter,
  type PageEdit,
  type StreamWriterOptions,
  sinkFromWritable,
  streamWriterBufferBytes,
} from "./stream-writer.ts";
