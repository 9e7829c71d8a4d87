/**
 * Wire constants of the QEMU 7.2 migration stream and its return path
 * (docs/migration-protocol.md §1.3, §1.6, §2.1, §4). Typed `as const` so no bare number or
 * string travels through the parsers.
 */

/** be32 "QEVM" (savevm.c QEMU_VM_FILE_MAGIC). */
export const FILE_MAGIC = 0x5145564d;
/** The only stream version QEMU accepts (QEMU_VM_FILE_VERSION). */
export const FILE_VERSION = 3;
/** Obsolete format QEMU refuses ("SaveVM v2 format is obsolete"). */
export const FILE_VERSION_COMPAT = 2;
/** magic + version. */
export const HEADER_BYTES = 8;

/** Top-level item type bytes (migration/savevm.h). */
export const Section = {
  eof: 0x00,
  start: 0x01,
  part: 0x02,
  end: 0x03,
  full: 0x04,
  subsection: 0x05,
  vmdescription: 0x06,
  configuration: 0x07,
  command: 0x08,
  footer: 0x7e,
} as const;
export type SectionType = (typeof Section)[keyof typeof Section];

/** Names for messages, by type byte. */
export const SECTION_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(Section).map(([name, value]) => [value, name]),
);

/** RAM record flags: the low 12 bits of each record's be64 word (ram.c RAM_SAVE_FLAG_*). */
export const RamFlag = {
  full: 0x001,
  zero: 0x002,
  memSize: 0x004,
  page: 0x008,
  eos: 0x010,
  continue: 0x020,
  xbzrle: 0x040,
  hook: 0x080,
  compressPage: 0x100,
  multifdFlush: 0x200,
} as const;
/** flags = word & RAM_FLAGS_MASK; address = word - flags (TARGET_PAGE_BITS = 12). */
export const RAM_FLAGS_MASK = 0xfff;

/** The RAM section's registration (ram.c ram_mig_init). */
export const RAM_SECTION_IDSTR = "ram";
export const RAM_SECTION_VERSION = 4;

/** QEMU_VM_COMMAND codes (savevm.c enum qemu_vm_cmd). */
export const Command = {
  invalid: 0,
  openReturnPath: 1,
  ping: 2,
  postcopyAdvise: 3,
  postcopyListen: 4,
  postcopyRun: 5,
  postcopyRamDiscard: 6,
  packaged: 7,
  enableColo: 8,
  postcopyResume: 9,
  recvBitmap: 10,
  switchoverStart: 11,
} as const;
export type CommandCode = (typeof Command)[keyof typeof Command];

export const COMMAND_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(Command).map(([name, value]) => [value, name]),
);

/** POSTCOPY_ADVISE payload: be64 page-size summary, be64 target page size. */
export const POSTCOPY_ADVISE_BYTES = 16;
/** POSTCOPY_RAM_DISCARD: u8 version 0, cstr8 name, u8 0, then 16-byte ranges. */
export const DISCARD_VERSION = 0;
export const DISCARD_RANGE_BYTES = 16;

/** Return-path message types (migration.c enum mig_rp_message_type). */
export const ReturnPathType = {
  invalid: 0,
  shut: 1,
  pong: 2,
  reqPagesId: 3,
  reqPages: 4,
  recvBitmap: 5,
  resumeAck: 6,
  switchoverAck: 7,
} as const;
export type ReturnPathTypeCode = (typeof ReturnPathType)[keyof typeof ReturnPathType];

/** SHUT payload values. */
export const ShutStatus = { ok: 0, error: 1 } as const;
/** Marker after a RECV_BITMAP's raw bitmap (ram.c RAMBLOCK_RECV_BITMAP_ENDING). */
export const RECV_BITMAP_ENDING = 0x0123456789abcdefn;

/** Configuration section subsections (savevm.c vmstate_configuration). */
export const ConfigSubsection = {
  targetPageBits: "configuration/target-page-bits",
  capabilities: "configuration/capabilities",
  uuid: "configuration/uuid",
} as const;
/** x86 TARGET_PAGE_BITS. */
export const TARGET_PAGE_BITS = 12;
export const CONFIG_UUID_BYTES = 16;
