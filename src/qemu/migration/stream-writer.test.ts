import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { BufferPool } from "../../bytes/index.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import type { DeviceState, RamBlock } from "./records.ts";
import { readMigrationStream } from "./stream-reader.ts";
import {
  type ByteSink,
  MigrationStreamWriter,
  sinkFromWritable,
  streamWriterBufferBytes,
} from "./stream-writer.ts";
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

/** A command item of `bytes` bytes in all (raw() only checks that no section is open). */
function encodeBig(bytes: number): Uint8Array {
  return new Uint8Array(bytes).fill(0x5a);
}

async function parse(bytes: Uint8Array): Promise<MemoryVisitor> {
  const visitor = new MemoryVisitor();
  await readMigrationStream(chunked(bytes, 8191), visitor);
  return visitor;
}

/**
 * A sink like a socket with a slow peer: it holds every batch until the test releases it, and
 * checks that no batch is rewritten while held and no held buffer is handed to it again.
 */
class HoldingSink implements ByteSink {
  readonly held: { bytes: Uint8Array; copy: Uint8Array; done: () => void }[] = [];
  /** Every batch in write order (copies taken when written). */
  readonly written: Uint8Array[] = [];
  maxHeld = 0;
  write(): void {
    assert.fail("a pooled writer uses writeThen");
  }
  writeThen(bytes: Uint8Array, done: () => void): void {
    for (const h of this.held) {
      assert.notEqual(h.bytes.buffer, bytes.buffer, "a held buffer is never handed out again");
    }
    const copy = Uint8Array.from(bytes);
    this.held.push({ bytes, copy, done });
    this.written.push(copy);
    this.maxHeld = Math.max(this.maxHeld, this.held.length);
  }
  /** Completes the write at `index` of those held (random order is allowed, as in a test). */
  release(index: number): void {
    const [h] = this.held.splice(index, 1);
    assert.ok(h !== undefined);
    assert.deepEqual(h.bytes, h.copy, "a batch stays unchanged until its write completed");
    h.done();
  }
  bytes(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.written));
  }
}

/** A random stream, written with the writer and modelled on the side: what must come back. */
async function randomStream(seed: number, pooled?: { sink: HoldingSink; keep: number }) {
  const random = prng(seed);
  const int = (n: number): number => Math.floor(random() * n);
  const afterWrite = (): void => {
    const h = pooled?.sink;
    while (h !== undefined && h.held.length > 0 && random() < 0.4) h.release(int(h.held.length));
  };
  const blocks: RamBlock[] = Array.from({ length: 1 + int(5) }, (_, i) => ({
    name: `${i}/${"b".repeat(int(40))}`,
    lengthBytes: (1 + int(64)) * PAGE_SIZE_BYTES,
  }));
  const model: Map<number, FinalPage>[] = blocks.map(() => new Map());
  const sink = pooled?.sink ?? new MemorySink();
  const batchBytes = 1 + int(100_000);
  const pool =
    pooled === undefined
      ? undefined
      : new BufferPool(streamWriterBufferBytes(batchBytes), pooled.keep);
  const w = new MigrationStreamWriter(sink, {
    batchBytes,
    ...(pool === undefined ? {} : { pool }),
  });
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
      afterWrite();
      last = block;
      if (random() < 0.02) {
        w.resetContinuation();
        last = -1;
      }
    }
    w.endRamSection();
    expectedBytes += 5 + 8 + 5;
    if (pool !== undefined && random() < 0.5) await w.flush(); // a small part, as a server sends
    afterWrite();
  }
  const device: DeviceState = {
    sections: DEVICE_SECTIONS,
    vmdescription: random() < 0.5 ? VMDESC : null,
  };
  w.deviceState(device, { withVmdescription: true });
  expectedBytes +=
    DEVICE_SECTIONS.byteLength + (device.vmdescription === null ? 0 : 5 + VMDESC.byteLength);
  await w.flush();
  return {
    bytes: sink.bytes(),
    blocks,
    model,
    device,
    expectedBytes,
    written: w.bytesWritten,
    pool,
  };
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

test("a pooled writer never rewrites or hands out a batch buffer a queued write still holds", async () => {
  for (let seed = 1; seed <= 30; seed++) {
    const sink = new HoldingSink();
    const keep = seed % 3 === 0 ? 0 : 64; // 0: every buffer is new, and none is reused wrongly
    const s = await randomStream(seed, { sink, keep });
    const pool = s.pool;
    assert.ok(pool !== undefined);
    while (sink.held.length > 0) sink.release(sink.held.length - 1);
    assert.equal(s.bytes.byteLength, s.expectedBytes, `seed ${seed}`);
    const got = await parse(s.bytes);
    assert.deepEqual(got.pages, s.model, `seed ${seed}: final memory`);
    assert.deepEqual(got.device, s.device, `seed ${seed}: device state`);
    const { allocated, outstanding } = pool.stats;
    assert.equal(outstanding, 1, "only the buffer being written into is out");
    if (keep > 0) {
      assert.ok(allocated <= sink.maxHeld + 1, `${allocated} allocated, ${sink.maxHeld} held`);
    }
  }
});

test("a pooled writer whose batch grows out of its buffer gives the buffer back", async () => {
  const pool = new BufferPool(streamWriterBufferBytes(1024), 4);
  const sink = new HoldingSink();
  const w = new MigrationStreamWriter(sink, { batchBytes: 1024, pool });
  const big = encodeBig(3 * pool.bufferBytes);
  w.raw(big); // grows: the batch is a new, larger buffer; the pooled one is free again
  assert.equal(sink.held.length, 1);
  assert.equal(pool.stats.outstanding, 1, "the grown-out-of buffer went back");
  sink.release(0);
  assert.deepEqual(sink.bytes(), big);
  assert.equal(pool.stats.outstanding, 1);
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

test("a page edit changes only the pages it returns a copy for, never the caller's buffer", async () => {
  const sink = new MemorySink();
  const edited: string[] = [];
  const w = new MigrationStreamWriter(sink, {
    pageEdit: {
      apply(block, page, data) {
        edited.push(`${block}:${page}`);
        return page === 2 ? new Uint8Array(data).fill(9) : data;
      },
    },
  });
  w.header();
  w.ramStart(RAM, [{ name: "pc.ram", lengthBytes: 4 * PAGE_SIZE_BYTES }]);
  w.beginRamEnd();
  const data = new Uint8Array(PAGE_SIZE_BYTES).fill(7);
  for (let i = 0; i < 3; i++) w.page(0, i, data);
  w.zeroPage(0, 3);
  w.endRamSection();
  w.eof();
  await w.flush();
  assert.deepEqual(edited, ["0:0", "0:1", "0:2"], "data pages only, each once");
  assert.ok(
    data.every((b) => b === 7),
    "the caller's page is not touched",
  );
  const got = await parse(sink.bytes());
  const pages = got.pages[0];
  assert.ok(pages !== undefined);
  assert.deepEqual(pages.get(1), new Uint8Array(PAGE_SIZE_BYTES).fill(7));
  assert.deepEqual(pages.get(2), new Uint8Array(PAGE_SIZE_BYTES).fill(9));
  assert.equal(pages.get(3), 0);
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
