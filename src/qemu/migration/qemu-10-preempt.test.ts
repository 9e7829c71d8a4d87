/**
 * The QEMU 10.0 postcopy-preempt capture (test/fixtures/qemu-10.0/pc-preempt.*, made by
 * scripts/capture-qemu-streams.ts): its main channel, its preempt channel and its return path,
 * at many chunk splits. What they show: docs/qemu-versions.md.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { UnsupportedStreamError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { Command, Section } from "./constants.ts";
import { readPreemptChannel } from "./preempt-channel.ts";
import type { RamBlock } from "./records.ts";
import { type ReturnPathMessage, ReturnPathReader } from "./return-path.ts";
import { readMigrationStream } from "./stream-reader.ts";
import { walkPostcopyStream } from "./test-postcopy-walk.ts";
import { chunked, fixture, MemoryVisitor, randomChunks } from "./test-support.ts";

const main = fixture("pc-preempt.src2dst.bin", "10.0");
const preempt = fixture("pc-preempt.preempt.bin", "10.0");
const returnPath = fixture("pc-preempt.returnpath.bin", "10.0");

/** The first POSTCOPY_RAM_DISCARD of the main channel; SWITCHOVER_START is just before it. */
const FIRST_DISCARD = 0x177b37;
/** scripts/capture/fill.S rewrites [16 MiB, 20 MiB) of pc.ram, a counter in each page's first dword. */
const FILL = { startBytes: 16 * 2 ** 20, endBytes: 20 * 2 ** 20 };
const BLOCKS: readonly RamBlock[] = (
  [
    ["pc.ram", 128 * 2 ** 20],
    ["0000:00:02.0/vga.vram", 16 * 2 ** 20],
    ["/rom@etc/acpi/tables", 128 * 1024],
    ["pc.bios", 256 * 1024],
    ["pc.rom", 128 * 1024],
    ["0000:00:02.0/vga.rom", 64 * 1024],
    ["/rom@etc/table-loader", 4096],
    ["/rom@etc/acpi/rsdp", 4096],
  ] as const
).map(([name, lengthBytes]) => ({ name, lengthBytes }));

function splitsOf(data: Uint8Array): { size: string; input: AsyncIterable<Uint8Array> }[] {
  const inputs = [7, 4095, 4096, 4097, 65536, data.byteLength].map((size) => ({
    size: `${size}`,
    input: chunked(data, size),
  }));
  inputs.push({ size: "random(seed 20)", input: randomChunks(data, 20, 10000) });
  inputs.push({ size: "random(seed 21, ≤ 16)", input: randomChunks(data, 21, 16) });
  return inputs;
}

/** "pc.ram@1198000" for a page. */
const pageKey = (block: number, page: number): string =>
  `${BLOCKS[block]?.name}@${(page * PAGE_SIZE_BYTES).toString(16)}`;

/** The return path's page requests, in order, as pageKey strings. */
async function requestsOf(bytes: Uint8Array): Promise<string[]> {
  const keys: string[] = [];
  for await (const m of new ReturnPathReader(chunked(bytes, 4096))) {
    if (m.kind === "req-pages") {
      assert.equal(m.lengthBytes, PAGE_SIZE_BYTES);
      keys.push(`${m.blockName}@${m.startBytes.toString(16)}`);
    }
  }
  return keys;
}

test("10.0 preempt main channel: the reader takes its precopy part, the same at every split", async () => {
  assert.deepEqual(
    main.subarray(FIRST_DISCARD - 5, FIRST_DISCARD + 3),
    Uint8Array.of(Section.command, 0, Command.switchoverStart, 0, 0, 8, 0, 6),
  );
  let expected: string[] | null = null;
  for (const { size, input } of splitsOf(main)) {
    const visitor = new MemoryVisitor();
    await assert.rejects(
      readMigrationStream(input, visitor),
      (e: unknown) => e instanceof UnsupportedStreamError && e.offset === FIRST_DISCARD,
      `split ${size}`,
    );
    assert.equal(visitor.machine, "pc-i440fx-10.0");
    assert.deepEqual(visitor.blocks, BLOCKS);
    expected ??= visitor.digest();
    assert.deepEqual(visitor.digest(), expected, `precopy pages at split ${size}`);
  }
});

test("10.0 preempt main channel: walked whole, header to EOF, at every split", async () => {
  const outline = [
    "configuration pc-i440fx-10.0",
    "openReturnPath",
    "PING 1",
    "postcopyAdvise",
    "RAM START",
    "RAM PART ×3",
    "switchoverStart",
    ...BLOCKS.map((b) => `DISCARD ${b.name}`),
    "PING 2",
    "PACKAGED",
    "PING 4",
    "RAM PART ×3",
    "RAM END",
    "EOF",
  ];
  const reader = new MemoryVisitor();
  await readMigrationStream(chunked(main, 65536), reader).catch(() => undefined);
  let expected: string[] | null = null;
  for (const { size, input } of splitsOf(main)) {
    const [precopy, postcopy] = [new MemoryVisitor(), new MemoryVisitor()];
    const walk = await walkPostcopyStream(input, precopy, postcopy);
    assert.deepEqual(walk.outline, outline, `split ${size}`);
    assert.equal(walk.firstDiscardAt, FIRST_DISCARD);
    assert.equal(walk.streamBytes, main.byteLength);
    assert.equal(walk.packagedSections[0], Section.full);
    assert.deepEqual(precopy.digest(), reader.digest(), "the reader's precopy pages");
    expected ??= postcopy.digest();
    assert.deepEqual(postcopy.digest(), expected, `postcopy pages at split ${size}`);
  }
});

test("10.0 return path with preempt: PONG 1, 2, 4, 3, then 833 page requests, SHUT 0", async () => {
  const show = (m: ReturnPathMessage): string =>
    m.kind === "pong" ? `pong ${m.value}` : m.kind === "shut" ? `shut ${m.status}` : m.kind;
  let expected: string[] | null = null;
  for (const size of [1, 3, 7, 13, 4096, returnPath.byteLength]) {
    const got: ReturnPathMessage[] = [];
    for await (const m of new ReturnPathReader(chunked(returnPath, size))) got.push(m);
    const outline = got.map(show);
    assert.deepEqual(outline.slice(0, 4), ["pong 1", "pong 2", "pong 4", "pong 3"]);
    assert.deepEqual(outline.slice(4, -1), Array(833).fill("req-pages"));
    assert.equal(outline.at(-1), "shut 0");
    const named = got.filter((m) => m.kind === "req-pages" && m.named).length;
    assert.equal(named, 1, "only the first request names its block (REQ_PAGES_ID)");
    expected ??= outline;
    assert.deepEqual(outline, expected, `split ${size}`);
  }
});

test("10.0 preempt channel: bare PAGE records of requested fill pages, no EOS, every split", async () => {
  const requests = await requestsOf(returnPath);
  const postcopy = new MemoryVisitor();
  await walkPostcopyStream(chunked(main, 65536), new MemoryVisitor(), postcopy);
  const onMain = new Set(
    postcopy.pages.flatMap((pages, block) => [...pages.keys()].map((p) => pageKey(block, p))),
  );
  // The header of the first record: pc.ram offset 0x1198000 | PAGE, then its block name.
  assert.deepEqual(
    preempt.subarray(0, 15),
    new Uint8Array(Buffer.from("00000000011980080670632e72616d", "hex")),
  );
  let expected: string[] | null = null;
  for (const { size, input } of splitsOf(preempt)) {
    const sent: string[] = [];
    const summary = await readPreemptChannel(input, BLOCKS, {
      page(block, page, data) {
        const offset = page * PAGE_SIZE_BYTES;
        assert.equal(block, 0, "pc.ram");
        assert.ok(offset >= FILL.startBytes && offset < FILL.endBytes, "a page fill.S writes");
        assert.ok(
          data.subarray(4).every((b) => b === 0),
          "fill.S writes the first dword only",
        );
        sent.push(pageKey(block, page));
      },
      zeroPage: () => assert.fail("no ZERO record: fill pages are never zero"),
    });
    assert.equal(summary.eos, false, "10.0 ends the preempt channel without an EOS");
    assert.equal(summary.streamBytes, preempt.byteLength);
    assert.equal(summary.records, 829);
    assert.equal(summary.blocks[0]?.pageRecords, 829);
    expected ??= sent;
    assert.deepEqual(sent, expected, `split ${size}`);
  }
  assert.ok(expected !== null);
  const onPreempt = new Set(expected);
  assert.equal(onPreempt.size, expected.length, "no page twice on the preempt channel");
  assert.deepEqual(
    expected,
    requests.filter((r) => onPreempt.has(r)),
    "answers in the order of the requests",
  );
  const notOnPreempt = requests.filter((r) => !onPreempt.has(r));
  assert.equal(notOnPreempt.length, 4);
  assert.ok(
    notOnPreempt.every((r) => onMain.has(r)),
    "the rest went in the background",
  );
  assert.ok(
    expected.every((r) => !onMain.has(r)),
    "no page on both channels",
  );
});
