/**
 * Encoders for QEMU_VM_COMMAND items (docs/migration-protocol.md §1.6): `0x08, be16 cmd,
 * be16 len, payload`. Each returns the whole item, ready for MigrationStreamWriter.raw().
 * Includes the postcopy sequence a restore sends as QEMU's migration source (§6.7):
 * OPEN_RETURN_PATH,
 * POSTCOPY_ADVISE, POSTCOPY_RAM_DISCARD (split to fit be16 lengths), and the PACKAGED blob of
 * LISTEN + device FULL sections + RUN.
 */
import assert from "node:assert/strict";
import { ByteReader, ByteWriter } from "../../bytes/index.ts";
import { MIGRATION_COMMAND_PAYLOAD_BYTES_MAX, PAGE_SIZE_BYTES } from "../../limits.ts";
import {
  Command,
  type CommandCode,
  DISCARD_RANGE_BYTES,
  DISCARD_VERSION,
  POSTCOPY_ADVISE_BYTES,
  Section,
} from "./constants.ts";
import type { DeviceState } from "./records.ts";

const COMMAND_HEADER_BYTES = 5;
/** DISCARD payload before its ranges: version, name length, name, 0x00. */
const DISCARD_FIXED_BYTES = 3;
const NAME_BYTES_MAX = 0xff;

/** A byte range inside a RAM block. */
export interface ByteRange {
  readonly startBytes: number;
  readonly lengthBytes: number;
}

/** One command item with an arbitrary payload. */
export function encodeCommand(
  command: CommandCode,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  assert(payload.byteLength <= MIGRATION_COMMAND_PAYLOAD_BYTES_MAX, "command payload fits be16");
  return new ByteWriter(COMMAND_HEADER_BYTES + payload.byteLength)
    .u8(Section.command)
    .u16(command)
    .u16(payload.byteLength)
    .bytes(payload)
    .take();
}

/** OPEN_RETURN_PATH: the destination starts answering on the reverse channel. */
export function encodeOpenReturnPath(): Uint8Array {
  return encodeCommand(Command.openReturnPath);
}

/** PING(value): answered by PONG(value) on the return path. */
export function encodePing(value: number): Uint8Array {
  return encodeCommand(Command.ping, new ByteWriter(4).u32(value).take());
}

/**
 * POSTCOPY_ADVISE: `pageSizeSummaryBytes` is the OR of all blocks' page sizes (0x1000 for
 * ordinary RAM); the destination checks both values against its own.
 */
export function encodePostcopyAdvise(
  pageSizeSummaryBytes: number,
  targetPageSizeBytes: number = PAGE_SIZE_BYTES,
): Uint8Array {
  const payload = new ByteWriter(POSTCOPY_ADVISE_BYTES)
    .u64(pageSizeSummaryBytes)
    .u64(targetPageSizeBytes);
  return encodeCommand(Command.postcopyAdvise, payload.take());
}

export function encodePostcopyListen(): Uint8Array {
  return encodeCommand(Command.postcopyListen);
}

export function encodePostcopyRun(): Uint8Array {
  return encodeCommand(Command.postcopyRun);
}

/** Most ranges one DISCARD for `blockName` can carry within a be16 length. */
export function discardRangesPerCommandMax(blockName: string): number {
  const payloadMax = MIGRATION_COMMAND_PAYLOAD_BYTES_MAX - DISCARD_FIXED_BYTES - blockName.length;
  return Math.floor(payloadMax / DISCARD_RANGE_BYTES);
}

/**
 * POSTCOPY_RAM_DISCARD commands for `ranges` (bytes, page aligned, in `blockName`), as many
 * as needed so each payload stays within 65535 bytes (or `rangesPerCommandMax` ranges; QEMU
 * itself sends 12). No ranges, no commands; a restore must send at least one (§6.1).
 */
export function encodePostcopyRamDiscard(
  blockName: string,
  ranges: readonly ByteRange[],
  options: { readonly rangesPerCommandMax?: number } = {},
): Uint8Array[] {
  assert(blockName.length > 0 && blockName.length <= NAME_BYTES_MAX, "block name fits cstr8");
  const perCommand = options.rangesPerCommandMax ?? discardRangesPerCommandMax(blockName);
  assert(perCommand >= 1 && perCommand <= discardRangesPerCommandMax(blockName), "ranges fit be16");
  const commands: Uint8Array[] = [];
  for (let first = 0; first < ranges.length; first += perCommand) {
    const batch = ranges.slice(first, first + perCommand);
    const payload = new ByteWriter(
      DISCARD_FIXED_BYTES + blockName.length + batch.length * DISCARD_RANGE_BYTES,
    );
    payload.u8(DISCARD_VERSION).u8(blockName.length).latin1(blockName).u8(0);
    for (const range of batch) {
      assert(range.startBytes % PAGE_SIZE_BYTES === 0, "discard start is page aligned");
      assert(
        range.lengthBytes > 0 && range.lengthBytes % PAGE_SIZE_BYTES === 0,
        "discard length is whole pages",
      );
      payload.u64(range.startBytes).u64(range.lengthBytes);
    }
    commands.push(encodeCommand(Command.postcopyRamDiscard, payload.take()));
  }
  return commands;
}

/** PACKAGED: the command (be32 blob length) followed by the blob itself. */
export function encodePackaged(blob: Uint8Array): Uint8Array {
  assert(blob.byteLength <= 0xffff_ffff, "package fits its be32 length");
  const header = encodeCommand(Command.packaged, new ByteWriter(4).u32(blob.byteLength).take());
  return new ByteWriter(header.byteLength + blob.byteLength).bytes(header).bytes(blob).take();
}

/**
 * The postcopy package blob (§3.2 item 7, §6.7 step 7): POSTCOPY_LISTEN, the device FULL
 * sections without their trailing EOF (and without the VMDESCRIPTION), optionally a PING,
 * then POSTCOPY_RUN. An EOF inside the package would end it before RUN.
 */
export function buildPostcopyPackage(
  state: DeviceState,
  options: { readonly pingBeforeRun?: number } = {},
): Uint8Array {
  const sections = sectionsWithoutEof(state.sections);
  const listen = encodePostcopyListen();
  const ping =
    options.pingBeforeRun === undefined ? new Uint8Array(0) : encodePing(options.pingBeforeRun);
  const run = encodePostcopyRun();
  const out = new ByteWriter(
    listen.byteLength + sections.byteLength + ping.byteLength + run.byteLength,
  );
  return out.bytes(listen).bytes(sections).bytes(ping).bytes(run).take();
}

/** The FULL sections of a device state, its final EOF byte stripped. */
export function sectionsWithoutEof(sections: Uint8Array): Uint8Array {
  assert(sections.byteLength >= 1, "device state has at least its EOF byte");
  const first = new ByteReader(sections).u8();
  assert(first === Section.full || sections.byteLength === 1, "device state starts with FULL");
  const last = new ByteReader(sections.subarray(sections.byteLength - 1)).u8();
  assert(last === Section.eof, "device state sections end with EOF");
  return sections.subarray(0, sections.byteLength - 1);
}
