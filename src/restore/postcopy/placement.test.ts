import assert from "node:assert/strict";
import { test } from "node:test";
import { ByteReader } from "../../bytes/index.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { Command, Section } from "../../qemu/migration/index.ts";
import { discardCommands, discardRanges } from "./discard.ts";
import { Placement } from "./placement.ts";

const P = PAGE_SIZE_BYTES;

test("global indices run over the blocks back to back, and locate inverts index", () => {
  const placement = new Placement([4, 1, 3]);
  assert.equal(placement.totalPages, 8);
  assert.equal(placement.index(1, 0), 4);
  assert.equal(placement.index(2, 2), 7);
  for (let g = 0; g < 8; g++) {
    const { block, page } = placement.locate(g);
    assert.equal(placement.index(block, page), g);
  }
  assert.throws(() => placement.index(1, 1), /page in block/);
  assert.throws(() => placement.index(3, 0), /block index in range/);
});

test("a page is sent at most once: the second markSent is a bug", () => {
  const placement = new Placement([2]);
  placement.markSent(1);
  assert.ok(placement.isSent(1));
  assert.throws(() => placement.markSent(1), /sent at most once/);
  assert.equal(placement.sentPages, 1);
  assert.equal(placement.countSent(), 1);
});

test("markRequested is true only for a page's first request", () => {
  const placement = new Placement([2]);
  assert.equal(placement.markRequested(0), true);
  assert.equal(placement.markRequested(0), false);
  assert.equal(placement.isSent(0), false, "requested is not sent");
});

test("discard ranges are the unsent runs, coalesced, in bytes", () => {
  const cases: { sent: number[]; want: [number, number][] }[] = [
    { sent: [], want: [[0, 10]] },
    { sent: [0], want: [[1, 9]] },
    { sent: [9], want: [[0, 9]] },
    {
      sent: [2, 3, 7],
      want: [
        [0, 2],
        [4, 3],
        [8, 2],
      ],
    },
    {
      sent: [0, 2, 4, 6, 8],
      want: [
        [1, 1],
        [3, 1],
        [5, 1],
        [7, 1],
        [9, 1],
      ],
    },
    { sent: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], want: [] },
  ];
  for (const { sent, want } of cases) {
    const placement = new Placement([3, 10]);
    for (const p of sent) placement.markSent(placement.index(1, p));
    const ranges = discardRanges(placement, 1);
    const expected = want.map(([first, pages]) => ({
      startBytes: first * P,
      lengthBytes: pages * P,
    }));
    assert.deepEqual(ranges, expected, `sent ${sent.join(",")}`);
    assert.deepEqual(discardRanges(placement, 0), [{ startBytes: 0, lengthBytes: 3 * P }]);
  }
});

test("discard commands name each block with unsent pages; a fully sent block gets none", () => {
  const placement = new Placement([2, 3]);
  placement.markSent(0);
  placement.markSent(1);
  const commands = discardCommands(["pc.ram", "pc.rom"], placement);
  assert.equal(commands.length, 1);
  const r = new ByteReader(commands[0] ?? new Uint8Array(0));
  assert.equal(r.u8(), Section.command);
  assert.equal(r.u16(), Command.postcopyRamDiscard);
  assert.equal(r.u16(), 3 + 6 + 16);
  assert.deepEqual([r.u8(), r.latin1(r.u8()), r.u8()], [0, "pc.rom", 0]);
  assert.deepEqual([r.u64(), r.u64()], [0n, BigInt(3 * P)]);
  assert.equal(r.remaining, 0);
});

test("discardCommands refuses to send none: QEMU 7.2 needs one before LISTEN", () => {
  const placement = new Placement([1]);
  placement.markSent(0);
  assert.throws(() => discardCommands(["pc.ram"], placement), /at least one DISCARD/);
});

test("a large scattered block splits its ranges over several DISCARD commands", () => {
  const pages = 20_000;
  const placement = new Placement([pages]);
  for (let p = 0; p < pages; p += 2) placement.markSent(p);
  const ranges = discardRanges(placement, 0);
  assert.equal(ranges.length, pages / 2);
  const commands = discardCommands(["pc.ram"], placement);
  assert.ok(commands.length >= 3, `${commands.length} commands`);
  for (const c of commands) assert.ok(c.byteLength <= 5 + 0xffff);
});
