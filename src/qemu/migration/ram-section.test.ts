import assert from "node:assert/strict";
import { test } from "node:test";
import { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { RamFlag } from "./constants.ts";
import { readMigrationStream } from "./stream-reader.ts";
import {
  footer,
  inside,
  memSize,
  Piece,
  page,
  type RejectionCase,
  record,
  spliced,
  testRejections,
  u64,
  zero,
} from "./test-streams.ts";
import { chunked, MemoryVisitor } from "./test-support.ts";

const cases: readonly RejectionCase[] = [
  // MEM_SIZE list
  {
    name: "hugepage field between blocks",
    stream: inside(
      spliced(
        Piece.memSize,
        memSize(undefined, () => u64(0x200000)),
      ),
      8 + 7 + 8,
    ),
    error: UnsupportedStreamError,
    message: /extra be64 field/,
  },
  {
    name: "extra field after the last block",
    stream: inside(
      spliced(
        Piece.memSize,
        memSize([{ name: "pc.ram", lengthBytes: 0x4000 }], () => u64(0xfffc0000)),
        zero(0, "vga"),
      ),
      8 + 7 + 8,
    ),
    error: UnsupportedStreamError,
    message: /Expected EOS after the MEM_SIZE list/,
  },
  {
    name: "block length not whole pages",
    stream: inside(
      spliced(
        Piece.memSize,
        memSize([
          { name: "a", lengthBytes: 0x1800 },
          { name: "b", lengthBytes: 0x2800 },
        ]),
      ),
      8,
    ),
    error: UnsupportedStreamError,
    message: /not a whole number of 4 KiB pages/,
  },
  {
    name: "block listed twice",
    stream: inside(
      spliced(
        Piece.memSize,
        memSize([
          { name: "a", lengthBytes: 0x1000 },
          { name: "a", lengthBytes: 0x1000 },
        ]),
      ),
      8 + 2 + 8,
    ),
    error: DecodeError,
    message: /lists block "a" twice/,
  }, // RAM records
  {
    name: "xbzrle page",
    stream: spliced(Piece.firstPage, record(RamFlag.xbzrle, 0, "pc.ram", Uint8Array.of(1, 0, 0))),
    error: UnsupportedStreamError,
    message: /XBZRLE/,
  },
  {
    name: "compressed page",
    stream: spliced(Piece.firstPage, record(RamFlag.compressPage, 0, "pc.ram", new Uint8Array(4))),
    error: UnsupportedStreamError,
    message: /compress/,
  },
  {
    name: "MULTIFD_FLUSH",
    stream: spliced(Piece.firstPage, record(RamFlag.multifdFlush, 0, null, new Uint8Array(0))),
    error: UnsupportedStreamError,
    message: /multifd/,
  },
  {
    name: "unknown RAM flags",
    stream: spliced(Piece.firstPage, record(0x400, 0, null, new Uint8Array(0))),
    error: DecodeError,
    message: /unknown flags 0x400/,
  },
  {
    name: "MEM_SIZE in a PART",
    stream: spliced(Piece.firstPage, memSize()),
    error: DecodeError,
    message: /MEM_SIZE record outside/,
  },
  {
    name: "unknown block",
    stream: inside(spliced(Piece.firstPage, page(0, "nope")), 8),
    error: DecodeError,
    message: /unknown block "nope"/,
  },
  {
    name: "CONTINUE without a block",
    stream: spliced(Piece.firstPage, page(0, null), zero(1, "pc.ram")),
    error: DecodeError,
    message: /CONTINUE but no block/,
  },
  {
    name: "page offset beyond its block",
    stream: spliced(Piece.firstPage, page(4, "pc.ram")),
    error: DecodeError,
    message: /offset 0x4000 is beyond block "pc.ram" \(0x4000 bytes\)/,
  },
  {
    name: "huge page offset",
    stream: spliced(
      Piece.firstPage,
      record(RamFlag.page, 2 ** 52, "pc.ram", new Uint8Array(PAGE_SIZE_BYTES)),
    ),
    error: DecodeError,
    message: /beyond block "pc.ram"/,
  }, // Footers
  {
    name: "footer with the wrong id",
    stream: spliced(Piece.partFooter, footer(3)),
    error: DecodeError,
    message: /Mismatched footer .* section 3, not 2/,
  },
  {
    name: "missing footer",
    stream: spliced(Piece.startFooter),
    error: DecodeError,
    message: /Missing footer for the RAM START section/,
  },
];

testRejections(cases);

test("a ZERO record with a non-zero fill counts as a data page", async () => {
  const bytes = spliced(Piece.firstPage, zero(0, "pc.ram", 0xff)).bytes;
  const summary = await readMigrationStream(chunked(bytes, 4096), new MemoryVisitor());
  const ram = summary.blocks[0];
  assert.deepEqual([ram?.finalDataPages, ram?.finalZeroPages, ram?.zeroRecords], [3, 1, 2]);
});
