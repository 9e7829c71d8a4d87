/**
 * Byte-level builders for hand-made migration streams in tests, including invalid ones the
 * MigrationStreamWriter refuses to produce. Each returns one item so tests can splice a bad
 * piece into an otherwise valid stream and know its exact offset. Not public.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ByteWriter } from "../../bytes/index.ts";
import type { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { FILE_MAGIC, RamFlag, Section } from "./constants.ts";
import type { RamBlock } from "./records.ts";
import { type ReadStreamOptions, readMigrationStream } from "./stream-reader.ts";
import { chunked, MemoryVisitor } from "./test-support.ts";

export const RAM_ID = 2;
export const BLOCKS: readonly RamBlock[] = [
  { name: "pc.ram", lengthBytes: 4 * PAGE_SIZE_BYTES },
  { name: "vga", lengthBytes: 2 * PAGE_SIZE_BYTES },
];

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Total length of `parts`: the offset of whatever comes after them. */
export function lengthOf(...parts: readonly Uint8Array[]): number {
  return parts.reduce((sum, p) => sum + p.byteLength, 0);
}

const w = (): ByteWriter => new ByteWriter(64);
const cstr8 = (out: ByteWriter, text: string): ByteWriter => out.u8(text.length).latin1(text);

export function header(version = 3, magic = FILE_MAGIC): Uint8Array {
  return w().u32(magic).u32(version).take();
}

export function configuration(machine = "pc-i440fx-7.2", ...subsections: Uint8Array[]): Uint8Array {
  const out = w().u8(Section.configuration).u32(machine.length).latin1(machine);
  for (const s of subsections) out.bytes(s);
  return out.take();
}

/** A configuration subsection: 0x05, cstr8 name, be32 version, body. */
export function configSubsection(name: string, body: Uint8Array, version = 1): Uint8Array {
  return cstr8(w().u8(Section.subsection), name).u32(version).bytes(body).take();
}

/** START/FULL section header. */
export function sectionStart(
  type: number,
  id: number,
  idstr: string,
  instanceId = 0,
  version = 4,
): Uint8Array {
  return cstr8(w().u8(type).u32(id), idstr).u32(instanceId).u32(version).take();
}

/** MEM_SIZE record with its block list; `extra` bytes go after each block's length. */
export function memSize(
  blocks: readonly RamBlock[] = BLOCKS,
  extra?: (i: number) => Uint8Array,
): Uint8Array {
  const total = blocks.reduce((sum, b) => sum + b.lengthBytes, 0);
  const out = w().u64(total + RamFlag.memSize);
  blocks.forEach((b, i) => {
    cstr8(out, b.name).u64(b.lengthBytes);
    if (extra !== undefined) out.bytes(extra(i));
  });
  return out.take();
}

/** A RAM record: be64 offset|flags, the block name unless null (CONTINUE), the payload. */
export function record(
  flags: number,
  offsetBytes: number,
  name: string | null,
  payload: Uint8Array,
): Uint8Array {
  const out = w().u64(offsetBytes + flags);
  if (name !== null) cstr8(out, name);
  return out.bytes(payload).take();
}

export function page(pageIndex: number, name: string | null, fill = 0x5a): Uint8Array {
  const flags = RamFlag.page | (name === null ? RamFlag.continue : 0);
  return record(
    flags,
    pageIndex * PAGE_SIZE_BYTES,
    name,
    new Uint8Array(PAGE_SIZE_BYTES).fill(fill),
  );
}

export function zero(pageIndex: number, name: string | null, fill = 0): Uint8Array {
  const flags = RamFlag.zero | (name === null ? RamFlag.continue : 0);
  return record(flags, pageIndex * PAGE_SIZE_BYTES, name, Uint8Array.of(fill));
}

export function eos(): Uint8Array {
  return w().u64(RamFlag.eos).take();
}

export function footer(id = RAM_ID, type: number = Section.footer): Uint8Array {
  return w().u8(type).u32(id).take();
}

export function part(id = RAM_ID): Uint8Array {
  return w().u8(Section.part).u32(id).take();
}

export function end(id = RAM_ID): Uint8Array {
  return w().u8(Section.end).u32(id).take();
}

export function command(cmd: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  return w().u8(Section.command).u16(cmd).u16(payload.byteLength).bytes(payload).take();
}

const VMDESC_JSON = '{"page_size":4096,"devices":[{"name":"timer","instance_id":0}]}';

/** One FULL section ("timer", id 0) + EOF. */
export const DEVICE_SECTIONS = concat(
  sectionStart(Section.full, 0, "timer", 0, 2),
  w().u64(0x1122334455667788n).take(),
  footer(0),
  Uint8Array.of(Section.eof),
);
export const VMDESC = new TextEncoder().encode(VMDESC_JSON);
export const DEVICE = concat(
  DEVICE_SECTIONS,
  w().u8(Section.vmdescription).u32(VMDESC.byteLength).bytes(VMDESC).take(),
);

/** The pieces of a small valid stream, in order; join them with concat(...validPieces()). */
export function validPieces(): Uint8Array[] {
  return [
    header(),
    configuration(),
    sectionStart(Section.start, RAM_ID, "ram"),
    memSize(),
    eos(),
    footer(),
    part(),
    page(0, "pc.ram"),
    zero(1, null),
    page(2, null),
    zero(0, "vga"),
    eos(),
    footer(),
    end(),
    page(1, "vga"),
    page(3, "pc.ram"),
    eos(),
    footer(),
    DEVICE,
  ];
}

/** Indexes into validPieces(), for splicing. */
export const Piece = {
  header: 0,
  configuration: 1,
  start: 2,
  memSize: 3,
  startEos: 4,
  startFooter: 5,
  part: 6,
  firstPage: 7,
  partEos: 11,
  partFooter: 12,
  end: 13,
  endFooter: 17,
  device: 18,
} as const;

/** validPieces() with piece `index` replaced by `replacement` (or several). */
export function spliced(
  index: number,
  ...replacement: Uint8Array[]
): { bytes: Uint8Array; at: number } {
  const pieces = validPieces();
  const at = lengthOf(...pieces.slice(0, index));
  pieces.splice(index, 1, ...replacement);
  return { bytes: concat(...pieces), at };
}

/** One rejection: the stream, where the error must point, its class and message. */
export interface RejectionCase {
  readonly name: string;
  readonly stream: { readonly bytes: Uint8Array; readonly at: number };
  readonly error: typeof DecodeError | typeof UnsupportedStreamError;
  readonly message: RegExp;
  readonly options?: ReadStreamOptions;
}

/** Registers one test per case: the reader must reject with that class, message and offset. */
export function testRejections(cases: readonly RejectionCase[]): void {
  for (const c of cases) {
    test(`rejects: ${c.name}`, async () => {
      await assert.rejects(
        readMigrationStream(chunked(c.stream.bytes, 4096), new MemoryVisitor(), c.options),
        (e: unknown) => {
          assert.ok(e instanceof c.error, `expected ${c.error.name}, got ${String(e)}`);
          assert.match(e.message, c.message);
          assert.equal(e.offset, c.stream.at, `offset in: ${e.message}`);
          return true;
        },
      );
    });
  }
}

/** The valid stream's bytes. */
export const valid = concat(...validPieces());
/** Offset of piece `index` of the valid stream. */
export const offsetOf = (index: number): number => lengthOf(...validPieces().slice(0, index));
/** The valid stream cut to `length` bytes; the error must point at `at`. */
export const cut = (length: number, at: number = length) => ({
  bytes: valid.subarray(0, length),
  at,
});
/** A spliced stream whose error lies `delta` bytes into the replaced piece. */
export const inside = (stream: { bytes: Uint8Array; at: number }, delta: number) => ({
  ...stream,
  at: stream.at + delta,
});
export const u64 = (value: number): Uint8Array => new ByteWriter(8).u64(value).take();
