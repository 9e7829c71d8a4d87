/** The preempt-channel reader on hand-made channels: EOS, CONTINUE, and what it refuses. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ByteWriter } from "../../bytes/index.ts";
import { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { RamFlag } from "./constants.ts";
import { readPreemptChannel } from "./preempt-channel.ts";
import { chunked, MemoryVisitor } from "./test-support.ts";

const BLOCKS = [
  { name: "pc.ram", lengthBytes: 16 * PAGE_SIZE_BYTES },
  { name: "pc.rom", lengthBytes: 2 * PAGE_SIZE_BYTES },
];

/** A record: be64 offset|flags, the block name unless CONTINUE, then a page or a fill byte. */
function record(offsetBytes: number, flags: number, name: string | null, fill: number): Buffer {
  const w = new ByteWriter();
  w.u64(BigInt(offsetBytes + flags));
  if (name !== null) {
    w.u8(name.length);
    w.latin1(name);
  }
  if ((flags & RamFlag.page) !== 0) w.bytes(new Uint8Array(PAGE_SIZE_BYTES).fill(fill));
  else w.u8(fill);
  return Buffer.from(w.take());
}
const eos = (): Buffer => Buffer.from("0000000000000010", "hex");

async function read(bytes: Uint8Array, size = 5) {
  const visitor = new MemoryVisitor();
  visitor.ramBlocks(BLOCKS, { sectionId: 0, instanceId: 0, versionId: 0 });
  const summary = await readPreemptChannel(chunked(new Uint8Array(bytes), size), BLOCKS, visitor);
  return { summary, visitor };
}

test("PAGE, CONTINUE and ZERO records to the visitor; a final EOS is noted", async () => {
  const channel = Buffer.concat([
    record(3 * PAGE_SIZE_BYTES, RamFlag.page, "pc.ram", 9),
    record(4 * PAGE_SIZE_BYTES, RamFlag.page | RamFlag.continue, null, 8),
    record(PAGE_SIZE_BYTES, RamFlag.zero, "pc.rom", 0),
    eos(),
  ]);
  for (const size of [1, 5, channel.byteLength]) {
    const { summary, visitor } = await read(channel, size);
    assert.equal(summary.eos, true);
    assert.equal(summary.records, 3);
    assert.equal(summary.streamBytes, channel.byteLength);
    assert.deepEqual([...(visitor.pages[0]?.keys() ?? [])], [3, 4]);
    assert.deepEqual(visitor.pages[0]?.get(4), new Uint8Array(PAGE_SIZE_BYTES).fill(8));
    assert.equal(visitor.pages[1]?.get(1), 0);
  }
  const { summary } = await read(channel.subarray(0, channel.byteLength - 8));
  assert.equal(summary.eos, false, "10.0 sends no EOS: the channel may just end");
});

test("refused with their offset: truncation, bytes after EOS, CONTINUE first, other flags", async () => {
  const page = record(0, RamFlag.page, "pc.ram", 1);
  const cases: [Uint8Array, new (...args: never[]) => Error, RegExp, number][] = [
    [page.subarray(0, 100), DecodeError, /ends inside a preempt page/, 15],
    [Buffer.concat([eos(), page]), DecodeError, /after its EOS/, 8],
    [record(0, RamFlag.page | RamFlag.continue, null, 1), DecodeError, /CONTINUE/, 0],
    [record(0, RamFlag.xbzrle, "pc.ram", 1), UnsupportedStreamError, /flags 0x40/, 0],
    [record(2 * PAGE_SIZE_BYTES, RamFlag.zero, "pc.rom", 0), DecodeError, /beyond block/, 0],
    [record(0, RamFlag.zero, "nope", 0), DecodeError, /unknown block "nope"/, 8],
  ];
  for (const [bytes, type, message, offset] of cases) {
    await assert.rejects(read(bytes), (e: unknown) => {
      assert.ok(e instanceof type, `${e}`);
      assert.match(e.message, message);
      assert.equal((e as DecodeError).offset, offset, e.message);
      return true;
    });
  }
});
