import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { pageDigestsOf } from "../format/chunk-hash.ts";
import { CodecId } from "../format/codec.ts";
import { FileName } from "../format/format.ts";
import { flipBit, prng, randomBytes, tempStore, textPage, writeSmall } from "../test-support.ts";
import { beginCheckpoint } from "../write/writer.ts";
import { ChunkWorkers } from "./chunk-workers.ts";
import { CheckpointReader } from "./reader.ts";

/** Every visit as "block/page:fill" or "block/page:<hex of the first 8 bytes and the sum>". */
async function visits(reader: CheckpointReader, workers?: ChunkWorkers): Promise<string[]> {
  const out: string[] = [];
  await reader.forEachPage(
    (b, p, data, fill) => {
      if (data === null) out.push(`${b}/${p}:${fill}`);
      else out.push(`${b}/${p}:${Buffer.from(data.subarray(0, 8)).toString("hex")}:${sum(data)}`);
    },
    workers === undefined ? {} : { workers },
  );
  return out;
}

function sum(data: Uint8Array): number {
  let s = 0;
  for (const x of data) s = (s + x) % 65521;
  return s;
}

test("forEachPage and verify with chunk workers see what the reader's own thread sees", async () => {
  const t = await tempStore();
  const workers = ChunkWorkers.start(2);
  try {
    await writeSmall(t.store, "small");
    const reader = await CheckpointReader.open(t.store, "small");
    try {
      assert.deepEqual(await visits(reader, workers), await visits(reader));
      const { ms: _a, ...alone } = await reader.verify();
      const { ms: _b, ...parallel } = await reader.verify({ workers });
      assert.deepEqual(parallel, alone);
    } finally {
      await reader.close();
    }
  } finally {
    await workers.close();
    await t.cleanup();
  }
});

test("a corrupt chunk decoded by a worker is the reader's InvalidCheckpointError", async () => {
  const t = await tempStore();
  const workers = ChunkWorkers.start(1);
  try {
    const rand = prng(5);
    const w = await beginCheckpoint(t.store, {
      name: "c",
      vm: {},
      qemu: {},
      stream: { configuration: new Uint8Array(0) },
    });
    w.setRamBlocks([{ name: "ram", lengthBytes: 3 * 64 * PAGE_SIZE_BYTES }]);
    for (let p = 0; p < 64; p++) await w.putPage(0, p, randomBytes(rand, PAGE_SIZE_BYTES));
    for (let p = 64; p < 192; p++) await w.putPage(0, p, textPage(p));
    w.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
    const listing = await w.commit();
    const before = await CheckpointReader.open(t.store, "c");
    const [raw, zstd] = [before.chunks.entry(0), before.chunks.entry(2)];
    await before.close();
    assert.deepEqual([raw.codec, zstd.codec], [CodecId.none, CodecId.zstd]);
    await flipBit(listing.dir, FileName.pack, raw.offset + 100);
    await flipBit(listing.dir, FileName.pack, zstd.offset + Math.floor(zstd.storedBytes / 2));
    const reader = await CheckpointReader.open(t.store, "c");
    try {
      const alone = await reader.verify().then(
        () => assert.fail("verify passes a corrupt checkpoint"),
        (error: unknown) => error,
      );
      await assert.rejects(reader.verify({ workers }), (error: unknown) => {
        assert.ok(error instanceof InvalidCheckpointError);
        assert.ok(alone instanceof InvalidCheckpointError);
        assert.equal(error.reason, alone.reason);
        assert.match(error.reason, /verify found 2 problem\(s\): chunk 0 fails its hash check/);
        return true;
      });
      let visited = 0;
      await assert.rejects(
        reader.forEachPage(() => void visited++, { workers }),
        (error: unknown) =>
          error instanceof InvalidCheckpointError && /^chunk 0 fails/.test(error.reason),
      );
      assert.equal(visited, 0, "no page of a walk reaches the visitor before its chunk failed");
    } finally {
      await reader.close();
    }
  } finally {
    await workers.close();
    await t.cleanup();
  }
});

test("digest jobs give each page's SHA-256; a closed pool rejects its pending jobs", async () => {
  const workers = ChunkWorkers.start(1);
  const rand = prng(3);
  const pages = Buffer.from(randomBytes(rand, 5 * PAGE_SIZE_BYTES));
  const buffer = new ArrayBuffer(64 * PAGE_SIZE_BYTES);
  new Uint8Array(buffer).set(pages);
  const reply = await workers.run({ kind: "digest", buffer, pages: 5 });
  assert.ok(reply.ok);
  assert.deepEqual(Buffer.from(reply.digests ?? []), pageDigestsOf(pages));
  assert.deepEqual(new Uint8Array(reply.buffer, 0, pages.byteLength), new Uint8Array(pages));
  const pending = assert.rejects(
    workers.run({ kind: "digest", buffer: reply.buffer, pages: 64 }),
    /closed/,
  );
  await workers.close();
  await pending;
  await assert.rejects(async () => workers.run({ kind: "digest", buffer, pages: 1 }), /open/);
});

test("a pool started on its first job has no thread before it, then all of them", {
  skip: process.platform !== "linux",
}, async () => {
  // Worker threads are created synchronously by `new Worker`: counting them needs no wait.
  const workerThreads = () =>
    readdirSync("/proc/self/task").filter(
      (t) => readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim() === "WorkerThread",
    ).length;
  const before = workerThreads();
  const workers = ChunkWorkers.onFirstJob(2);
  try {
    assert.equal(workerThreads(), before, "no thread before a job");
    const pages = Buffer.from(randomBytes(prng(5), PAGE_SIZE_BYTES));
    const buffer = new ArrayBuffer(PAGE_SIZE_BYTES);
    new Uint8Array(buffer).set(pages);
    const reply = await workers.run({ kind: "digest", buffer, pages: 1 });
    assert.ok(reply.ok);
    assert.deepEqual(Buffer.from(reply.digests ?? []), pageDigestsOf(pages));
    assert.equal(workerThreads(), before + 2, "the first job started every thread");
  } finally {
    await workers.close();
  }
});
