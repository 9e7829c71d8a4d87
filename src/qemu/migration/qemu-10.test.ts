/**
 * The QEMU 10.0 reference streams (test/fixtures/qemu-10.0, made by
 * scripts/capture-qemu-streams.ts): what the reader, writer and return-path reader make of
 * them, at many chunk splits. The 7.2 vs 10.0 differences are in docs/qemu-versions.md.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { UnsupportedStreamError } from "../../errors.ts";
import { encodeOpenReturnPath, encodePing, encodePostcopyAdvise } from "./commands.ts";
import { Command, Section } from "./constants.ts";
import type { StreamSummary } from "./records.ts";
import { encodeShut, type ReturnPathMessage, ReturnPathReader } from "./return-path.ts";
import { readMigrationStream } from "./stream-reader.ts";
import { MigrationStreamWriter } from "./stream-writer.ts";
import { chunked, fixture, MemoryVisitor, randomChunks } from "./test-support.ts";

const pcMig = fixture("pc.mig", "10.0");
const src2dst = fixture("pc-postcopy.src2dst.bin", "10.0");
const returnPath = fixture("pc-postcopy.returnpath.bin", "10.0");

/** Offsets in pc.mig (10.0): SWITCHOVER_START sits between the last PART and RAM END. */
const PC_SWITCHOVER_START = 0x1cb81b;
const PC_RAM_END = 0x1cb820;
/** Offsets in pc-postcopy.src2dst.bin (10.0). */
const At = { openReturnPath: 0x1b, ping1: 0x20, advise: 0x29, switchoverStart: 0x1f7f44 };
const FIRST_DISCARD = 0x1f7f49;

/** Collects what the writer hands its sink. */
class MemorySink {
  readonly chunks: Uint8Array[] = [];
  write(bytes: Uint8Array): void {
    this.chunks.push(bytes);
  }
  bytes(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.chunks));
  }
}

async function readAll(
  input: AsyncIterable<Uint8Array>,
): Promise<{ summary: StreamSummary; visitor: MemoryVisitor }> {
  const visitor = new MemoryVisitor();
  const summary = await readMigrationStream(input, visitor);
  return { summary, visitor };
}

test("10.0 pc.mig: machine pc-i440fx-10.0, SWITCHOVER_START before RAM END, device state", async () => {
  assert.deepEqual(
    pcMig.subarray(PC_SWITCHOVER_START, PC_RAM_END),
    Uint8Array.of(Section.command, 0, Command.switchoverStart, 0, 0),
  );
  assert.equal(pcMig[PC_RAM_END], Section.end);
  const { summary, visitor } = await readAll(chunked(pcMig, 65536));
  assert.equal(summary.version, 3);
  assert.equal(summary.machine, "pc-i440fx-10.0");
  assert.equal(summary.switchoverStart, true);
  assert.equal(summary.ramEnd, "end");
  assert.equal(summary.returnPathOpened, false);
  assert.equal(summary.streamBytes, pcMig.byteLength);
  assert.deepEqual(
    summary.blocks.map((b) => b.name),
    [
      "pc.ram",
      "0000:00:02.0/vga.vram",
      "/rom@etc/acpi/tables",
      "pc.bios",
      "0000:00:03.0/e1000.rom",
      "pc.rom",
      "0000:00:02.0/vga.rom",
      "/rom@etc/table-loader",
      "/rom@etc/acpi/rsdp",
    ],
  );
  assert.equal(summary.blocks[0]?.lengthBytes, 256 * 2 ** 20);
  assert.equal(summary.deviceSectionsFrom, "vmdescription");
  assert.deepEqual(summary.deviceSections[0], { name: "timer", instanceId: 0 });
  assert.deepEqual(summary.deviceSections.at(-1), { name: "globalstate", instanceId: 0 });
  assert.ok(visitor.device?.vmdescription !== null);
  assert.deepEqual(visitor.events, ["configuration", "ramBlocks", "pages", "deviceState"]);
});

test("10.0 pc.mig: the same result at every chunk split", async () => {
  const expected = await readAll(chunked(pcMig, pcMig.byteLength));
  const splits = [3, 7, 4095, 4096, 4097, 65536];
  const inputs = splits.map((size) => ({ size: `${size}`, input: chunked(pcMig, size) }));
  inputs.push({ size: "random(seed 10)", input: randomChunks(pcMig, 10, 10000) });
  inputs.push({ size: "random(seed 11, ≤ 16)", input: randomChunks(pcMig, 11, 16) });
  for (const { size, input } of inputs) {
    const got = await readAll(input);
    assert.deepEqual(got.summary, expected.summary, `summary at split ${size}`);
    assert.deepEqual(got.visitor.digest(), expected.visitor.digest(), `pages at split ${size}`);
    assert.deepEqual(got.visitor.device, expected.visitor.device, `device state at split ${size}`);
  }
});

test("10.0 pc.mig re-encoded by the writer reads back the same at every split", async () => {
  const original = await readAll(chunked(pcMig, 65536));
  const v = original.visitor;
  assert.ok(v.configRaw !== null && v.ram !== null && v.device !== null);
  const sink = new MemorySink();
  const w = new MigrationStreamWriter(sink);
  w.header();
  w.configuration(v.configRaw);
  w.ramStart(v.ram, v.blocks);
  w.beginRamEnd();
  v.pages.forEach((pages, block) => {
    for (const [index, page] of [...pages].sort((a, b) => a[0] - b[0])) {
      if (typeof page === "number") w.zeroPage(block, index, page);
      else w.page(block, index, page);
    }
  });
  w.endRamSection();
  w.deviceState(v.device, { withVmdescription: true });
  await w.flush();
  const bytes = sink.bytes();
  assert.deepEqual(bytes.subarray(0, 0x11f), pcMig.subarray(0, 0x11f), "header to RAM START");
  for (const size of [13, 4097, bytes.byteLength]) {
    const again = await readAll(chunked(bytes, size));
    assert.deepEqual(again.visitor.digest(), v.digest(), `pages at split ${size}`);
    assert.deepEqual(again.visitor.device, v.device, `device state at split ${size}`);
    assert.equal(again.summary.switchoverStart, false, "the writer sends no SWITCHOVER_START");
  }
});

test("10.0 postcopy stream: command encoders match, SWITCHOVER_START precedes the discards", async () => {
  const bytesAt = (at: number, length: number) => src2dst.subarray(at, at + length);
  assert.deepEqual(encodeOpenReturnPath(), bytesAt(At.openReturnPath, 5));
  assert.deepEqual(encodePing(1), bytesAt(At.ping1, 9));
  assert.deepEqual(encodePostcopyAdvise(0x1000, 0x1000), bytesAt(At.advise, 21));
  assert.deepEqual(
    bytesAt(At.switchoverStart, 5),
    Uint8Array.of(Section.command, 0, Command.switchoverStart, 0, 0),
  );
  assert.deepEqual(bytesAt(FIRST_DISCARD, 3), Uint8Array.of(8, 0, Command.postcopyRamDiscard));
  // The precopy reader accepts SWITCHOVER_START and stops at the first postcopy command.
  for (const size of [4096, 65536]) {
    await assert.rejects(
      readMigrationStream(chunked(src2dst, size), new MemoryVisitor()),
      (error: unknown) =>
        error instanceof UnsupportedStreamError &&
        /postcopyRamDiscard/.test(error.message) &&
        error.offset === FIRST_DISCARD,
    );
  }
});

test("10.0 return path: PONG 4 before PONG 3, then page requests, at every split", async () => {
  const expected = [
    "pong 1",
    "pong 2",
    "pong 4",
    "pong 3",
    "req pc.ram@13ef000+1000 named",
    ...["13fe000", "1180000", "11ad000", "11f3000", "1293000", "12ff000", "1334000", "13cb000"].map(
      (at) => `req pc.ram@${at}+1000`,
    ),
    "shut 0",
  ];
  const show = (m: ReturnPathMessage): string => {
    switch (m.kind) {
      case "pong":
        return `pong ${m.value}`;
      case "shut":
        return `shut ${m.status}`;
      case "req-pages": {
        const range = `${m.startBytes.toString(16)}+${m.lengthBytes.toString(16)}`;
        return `req ${m.blockName}@${range}${m.named ? " named" : ""}`;
      }
      default:
        return m.kind;
    }
  };
  for (const size of [1, 2, 3, 7, 13, returnPath.byteLength]) {
    const got: string[] = [];
    for await (const m of new ReturnPathReader(chunked(returnPath, size))) got.push(show(m));
    assert.deepEqual(got, expected, `split ${size}`);
  }
  assert.deepEqual(encodeShut(0), returnPath.subarray(returnPath.byteLength - 8));
});
