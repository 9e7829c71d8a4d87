/**
 * The RAM section body (docs/migration-protocol.md §2): the MEM_SIZE block list of its START,
 * the PAGE/ZERO records of its PARTs and END, each body closed by EOS and a section footer.
 *
 * Hot path: `readRamRecords` handles a page record with synchronous ByteSource.take calls and
 * awaits only when input runs short or the visitor returns a Promise.
 */
import type { ByteSource } from "../../bytes/index.ts";
import { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { PAGE_SIZE_BYTES, RAM_BLOCK_BYTES_MAX, RAM_BLOCKS_MAX } from "../../limits.ts";
import { RAM_FLAGS_MASK, RamFlag, Section } from "./constants.ts";
import type { BlockState, RamTracker } from "./ram-tracker.ts";
import type { RamBlock, StreamVisitor } from "./records.ts";

const TWO_POW_32 = 0x1_0000_0000;
const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Reads the START body after its section header: the MEM_SIZE record and block list, then
 * EOS. Anything else there (7.2 sends nothing else) means per-block fields we cannot parse.
 */
export async function readMemSizeList(src: ByteSource): Promise<RamBlock[]> {
  const header = await src.read(8, "the RAM MEM_SIZE record");
  const at = header.offset;
  const hi = header.u32();
  const lo = header.u32();
  const flags = lo & RAM_FLAGS_MASK;
  if (flags !== RamFlag.memSize) {
    throw new DecodeError(`RAM START must begin with MEM_SIZE, found flags ${hex(flags)}`, at);
  }
  const totalBytes = hi * TWO_POW_32 + (lo - flags);
  if (totalBytes > RAM_BLOCKS_MAX * RAM_BLOCK_BYTES_MAX) {
    throw new DecodeError(`RAM total ${hex(totalBytes)} bytes is beyond every limit`, at);
  }
  const blocks = await readBlockList(src, totalBytes);
  const eos = await src.read(8, "the EOS after the MEM_SIZE list");
  const eosAt = eos.offset;
  const word = eos.u64();
  if (word !== BigInt(RamFlag.eos)) {
    throw new UnsupportedStreamError(
      `Expected EOS after the MEM_SIZE list, found 0x${word.toString(16)}: per-block page ` +
        "size (hugepages with postcopy) or address (x-ignore-shared) fields are unsupported",
      eosAt,
    );
  }
  return blocks;
}

async function readBlockList(src: ByteSource, totalBytes: number): Promise<RamBlock[]> {
  const blocks: RamBlock[] = [];
  const names = new Set<string>();
  let leftBytes = totalBytes;
  while (leftBytes > 0) {
    const at = src.offset;
    if (blocks.length === RAM_BLOCKS_MAX) {
      throw new DecodeError(`MEM_SIZE list has more than ${RAM_BLOCKS_MAX} blocks`, at);
    }
    const nameLength = (await src.read(1, "a RAM block name length")).u8();
    if (nameLength === 0) {
      throw new UnsupportedStreamError(
        "MEM_SIZE entry has an extra be64 field (hugepage page size or x-ignore-shared " +
          "address) where a block name was expected",
        at,
      );
    }
    const name = (await src.read(nameLength, "a RAM block name")).latin1(nameLength);
    const lengthBytes = (await src.read(8, "a RAM block length")).u64Number("a RAM block length");
    checkBlock(name, lengthBytes, leftBytes, names, at);
    names.add(name);
    blocks.push({ name, lengthBytes });
    leftBytes -= lengthBytes;
  }
  return blocks;
}

function checkBlock(
  name: string,
  lengthBytes: number,
  leftBytes: number,
  names: ReadonlySet<string>,
  at: number,
): void {
  if (names.has(name)) throw new DecodeError(`MEM_SIZE lists block "${name}" twice`, at);
  if (lengthBytes === 0 || lengthBytes > RAM_BLOCK_BYTES_MAX || lengthBytes > leftBytes) {
    throw new DecodeError(
      `RAM block "${name}" has length ${hex(lengthBytes)}: outside 1..${hex(
        Math.min(RAM_BLOCK_BYTES_MAX, leftBytes),
      )} (the MEM_SIZE total left)`,
      at,
    );
  }
  if (lengthBytes % PAGE_SIZE_BYTES !== 0) {
    throw new UnsupportedStreamError(
      `RAM block "${name}" length ${hex(lengthBytes)} is not a whole number of 4 KiB pages`,
      at,
    );
  }
}

/** Reads PAGE/ZERO records up to and including EOS, reporting each to the visitor. */
export async function readRamRecords(
  src: ByteSource,
  ram: RamTracker,
  visitor: StreamVisitor,
): Promise<void> {
  for (;;) {
    const header = src.take(8) ?? (await src.read(8, "a RAM record header"));
    const at = header.offset;
    const hi = header.u32();
    const lo = header.u32();
    const flags = lo & RAM_FLAGS_MASK;
    const kind = flags & ~RamFlag.continue;
    if (kind === RamFlag.eos) return;
    if (kind !== RamFlag.page && kind !== RamFlag.zero) throw unexpectedFlags(flags, at);
    const block =
      (flags & RamFlag.continue) !== 0 ? ram.continued(at) : await readBlockName(src, ram);
    const pageIndex = block.pageIndex(hi, lo, flags, at);
    if (kind === RamFlag.page) {
      const data = src.take(PAGE_SIZE_BYTES) ?? (await src.read(PAGE_SIZE_BYTES, "a RAM page"));
      block.notePage(pageIndex);
      const pending = visitor.page(block.index, pageIndex, data.slice(PAGE_SIZE_BYTES));
      if (pending !== undefined) await pending;
    } else {
      const fill = (src.take(1) ?? (await src.read(1, "a zero page's fill byte"))).u8();
      block.noteZero(pageIndex, fill);
      const pending = visitor.zeroPage(block.index, pageIndex, fill);
      if (pending !== undefined) await pending;
    }
  }
}

async function readBlockName(src: ByteSource, ram: RamTracker): Promise<BlockState> {
  const at = src.offset;
  const length = (await src.read(1, "a RAM record's block name length")).u8();
  const name = (await src.read(length, "a RAM record's block name")).latin1(length);
  return ram.select(name, at);
}

function unexpectedFlags(flags: number, at: number): Error {
  const unsupported: readonly [number, string][] = [
    [RamFlag.xbzrle, "XBZRLE pages (capability xbzrle)"],
    [RamFlag.compressPage, "compressed pages (capability compress)"],
    [RamFlag.multifdFlush, "MULTIFD_FLUSH (capability multifd)"],
    [RamFlag.hook, "RDMA hooks"],
    [RamFlag.full, "the obsolete FULL page flag"],
  ];
  for (const [flag, what] of unsupported) {
    if ((flags & flag) !== 0) {
      return new UnsupportedStreamError(
        `RAM record uses ${what} (flags ${hex(flags)}); migrate without it`,
        at,
      );
    }
  }
  if ((flags & RamFlag.memSize) !== 0) {
    return new DecodeError("RAM MEM_SIZE record outside the RAM START section", at);
  }
  return new DecodeError(`RAM record has unknown flags ${hex(flags)}`, at);
}

/** Reads a section footer (0x7e, be32 id) and checks it closes `sectionId`. */
export async function readFooter(src: ByteSource, sectionId: number, what: string): Promise<void> {
  const footer = await src.read(5, `the footer of ${what}`);
  const at = footer.offset;
  const type = footer.u8();
  const id = footer.u32();
  if (type !== Section.footer) {
    throw new DecodeError(
      `Missing footer for ${what} (section ${sectionId}): found type ${hex(type)}, not 0x7e`,
      at,
    );
  }
  if (id !== sectionId) {
    throw new DecodeError(`Mismatched footer for ${what}: section ${id}, not ${sectionId}`, at);
  }
}
