import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import type { DeviceState, RamBlock } from "./records.ts";
import { readMigrationStream } from "./stream-reader.ts";
import { MigrationStreamWriter, sinkFromWritable } from "./stream-writer.ts";
import { configuration, DEVICE_SECTIONS, VMDESC } from "./test-streams.ts";
import { chunked, type FinalPage, fixture, MemoryVisitor, prng } from "./test-support.ts";

const RAM = { sectionId: 2, instanceId: 0, versionId: 4 } as const;

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

async function parse(bytes: Uint8Array): Promise<MemoryVisitor> {
  const visitor = new MemoryVisitor();
  await readMigrationStream(chunked(bytes, 8191), visitor);
  return visitor;
}

/** A random stream, written with the writer and modelled on the side: what must come back. */
async function randomStream(seed: number) {
  const random = prng(seed);
  const int = (n: number): number => Math.floor(random() * n);
  const blocks: RamBlock[] = Array.from({ length: 1 + int(5) }, (_, i) => ({
    name: `${i}/${"b".repeat(int(40))}`,
    lengthBytes: (1 + int(64)) * PAGE_SIZE_BYTES,
  }));
  const model: Map<number, FinalPage>[] = blocks.map(() => new Map());
  const sink = new MemorySink();
  const w = new MigrationStreamWriter(sink, { batchBytes: 1 + int(100_000) });
  w.header();
  w.configuration(configuration());
  w.ramStart(RAM, blocks);
  let expectedBytes = 8 + configuration().byteLength + 17 + 8 + 8 + 5;
  for (const b of blocks) expectedBytes += 1 + b.name.length + 8;
  let last = -1;
  const sections = 1 + int(4);
  for (let s = 0; s < sections; s++) {
    if (s === sections - 1) w.beginRamEnd();
    else w.beginRamPart();
    for (let r = int(300); r > 0; r--) {
      // Stay on the same block most of the time, so CONTINUE is common but not universal.
      const block = last !== -1 && random() < 0.8 ? last : int(blocks.length);
      const pageIndex = int((blocks[block]?.lengthBytes ?? 0) / PAGE_SIZE_BYTES);
      const named = block !== last;
      expectedBytes += 8 + (named ? 1 + (blocks[block]?.name.length ?? 0) : 0);
      if (random() < 0.5) {
        const fill = random() < 0.7 ? 0 : int(256);
        w.zeroPage(block, pageIndex, fill);
        model[block]?.set(pageIndex, fill);
        expectedBytes += 1;
      } else {
        const words = Uint32Array.from({ length: PAGE_SIZE_BYTES / 4 }, () => int(2 ** 32));
        const data = new Uint8Array(words.buffer);
        w.page(block, pageIndex, data);
        model[block]?.set(pageIndex, data);
        expectedBytes += PAGE_SIZE_BYTES;
      }
      last = block;
      if (random() < 0.02) {
        w.resetContinuation();
        last = -1;
      }
    }
    w.endRamSection();
    expectedBytes += 5 + 8 + 5;
  }
  const device: DeviceState = {
    sections: DEVICE_SECTIONS,
    vmdescription: random() < 0.5 ? VMDESC : null,
  };
  w.deviceState(device, { withVmdescription: true });
  expectedBytes +=
    DEVICE_SECTIONS.byteLength + (device.vmdescription === null ? 0 : 5 + VMDESC.byteLength);
  await w.flush();
  return { bytes: sink.bytes(), blocks, model, device, expectedBytes, written: w.bytesWritten };
}

test("writer → reader round trip with random blocks, pages, zero pages and CONTINUE", async () => {
  for (let seed = 1; seed <= 40; seed++) {
    const s = await randomStream(seed);
    assert.equal(
      s.bytes.byteLength,
      s.expectedBytes,
      `seed ${seed}: names sent exactly when the block changes`,
    );
    assert.equal(s.written, s.bytes.byteLength);
    const got = await parse(s.bytes);
    assert.deepEqual(got.blocks, s.blocks, `seed ${seed}`);
    assert.deepEqual(got.ram, RAM);
    assert.deepEqual(got.pages, s.model, `seed ${seed}: final memory`);
    assert.deepEqual(got.device, s.device, `seed ${seed}: device state`);
  }
});

test("re-encoding pc.mig through the writer gives the same final memory and device state", async () => {
  const pcMig = fixture("pc.mig");
  const original = await parse(pcMig);
  const sink = new MemorySink();
  const w = new MigrationStreamWriter(sink);
  w.header();
  assert.ok(original.configRaw !== null && original.ram !== null && original.device !== null);
  w.configuration(original.configRaw);
  w.ramStart(original.ram, original.blocks);
  w.beginRamEnd();
  original.pages.forEach((pages, block) => {
    for (const [index, page] of [...pages].sort((a, b) => a[0] - b[0])) {
      if (typeof page === "number") w.zeroPage(block, index, page);
      else w.page(block, index, page);
    }
  });
  w.endRamSection();
  w.deviceState(original.device, { withVmdescription: true });
  await w.flush();
  const bytes = sink.bytes();
  assert.deepEqual(
    bytes.subarray(0, 0x11e),
    pcMig.subarray(0, 0x11e),
    "header, configuration, RAM START",
  );
  const again = await parse(bytes);
  assert.deepEqual(again.digest(), original.digest());
  assert.deepEqual(again.device, original.device);
  assert.deepEqual(
    bytes.subarray(-200),
    pcMig.subarray(-200),
    "device state and VMDESCRIPTION verbatim",
  );
});

test("records are batched: the sink sees few large writes", async () => {
  const sink = new MemorySink();
  const w = new MigrationStreamWriter(sink, { batchBytes: 256 * 1024 });
  w.header();
  w.ramStart(RAM, [{ name: "pc.ram", lengthBytes: 1000 * PAGE_SIZE_BYTES }]);
  w.beginRamEnd();
  const data = new Uint8Array(PAGE_SIZE_BYTES).fill(7);
  for (let i = 0; i < 1000; i++) w.page(0, i, data);
  w.endRamSection();
  w.eof();
  await w.flush();
  const sizes = sink.chunks.map((c) => c.byteLength);
  assert.equal(sizes.length, Math.ceil(w.bytesWritten / (256 * 1024 + PAGE_SIZE_BYTES)));
  for (const size of sizes.slice(0, -1)) assert.ok(size >= 256 * 1024 && size < 256 * 1024 + 5000);
});

test("sinkFromWritable waits for drain before the writer goes on", async () => {
  const callbacks: (() => void)[] = [];
  const stream = new Writable({
    highWaterMark: 1024,
    write(_chunk, _encoding, callback) {
      callbacks.push(() => callback());
    },
  });
  const w = new MigrationStreamWriter(sinkFromWritable(stream), { batchBytes: 4096 });
  w.header();
  w.ramStart(RAM, [{ name: "pc.ram", lengthBytes: 4 * PAGE_SIZE_BYTES }]);
  w.beginRamPart();
  const pending = w.page(0, 0, new Uint8Array(PAGE_SIZE_BYTES));
  assert.ok(pending instanceof Promise, "a full batch the stream cannot take yet is awaited");
  let drained = false;
  const waited = pending.then(() => {
    drained = true;
  });
  await Promise.resolve();
  assert.equal(drained, false);
  for (const callback of callbacks.splice(0)) callback();
  await waited;
  assert.equal(drained, true);
});

test("a Node Writable can be the sink directly", async () => {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  const w = new MigrationStreamWriter(stream);
  w.header();
  w.ramStart(RAM, [{ name: "pc.ram", lengthBytes: PAGE_SIZE_BYTES }]);
  w.beginRamEnd(RAM);
  w.zeroPage(0, 0);
  w.endRamSection();
  w.eof();
  await w.flush();
  const summary = await readMigrationStream(
    chunked(new Uint8Array(Buffer.concat(chunks)), 10),
    new MemoryVisitor(),
  );
  assert.equal(summary.records, 1);
  assert.throws(() => w.beginRamPart({ ...RAM, sectionId: 3 }), { name: "AssertionError" });
});

test("sinkFromWritable refuses a closed stream instead of waiting forever", async () => {
  const stream = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  stream.destroy();
  const w = new MigrationStreamWriter(sinkFromWritable(stream));
  w.header();
  await assert.rejects(w.flush(), /sink is closed/);
});

test("misuse is a programmer error", () => {
  const w = new MigrationStreamWriter(new MemorySink());
  w.header();
  assert.throws(() => w.beginRamPart(), { name: "AssertionError" }, "PART before START");
  w.ramStart(RAM, [{ name: "pc.ram", lengthBytes: PAGE_SIZE_BYTES }]);
  assert.throws(() => w.page(0, 0, new Uint8Array(PAGE_SIZE_BYTES)), { name: "AssertionError" });
  w.beginRamPart();
  assert.throws(() => w.page(0, 1, new Uint8Array(PAGE_SIZE_BYTES)), { name: "AssertionError" });
  assert.throws(() => w.page(1, 0, new Uint8Array(PAGE_SIZE_BYTES)), { name: "AssertionError" });
  assert.throws(() => w.page(0, 0, new Uint8Array(100)), { name: "AssertionError" });
  assert.throws(() => w.eof(), { name: "AssertionError" }, "EOF inside a section");
});
