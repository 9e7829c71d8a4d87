/** The chunk loader's loads on the page server's own thread for a request (ADR 0029). */
import assert from "node:assert/strict";
import { readSync } from "node:fs";
import { test } from "node:test";
import { ChunkWorkers, PageDigests } from "../../checkpoint/index.ts";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { WorkerChunkLoader } from "./chunk-loader.ts";
import { SyncReads } from "./sync-reads.ts";
import { gatedStore, until, withReader } from "./test-support-loader.ts";

/** One worker thread that never answers by itself: `jobs` settle its jobs. */
function heldWorker() {
  const jobs: ((reply: unknown) => void)[] = [];
  const slow = {
    size: 1,
    run: () => new Promise((resolve) => jobs.push(resolve)),
    close: async () => undefined,
  } as unknown as ChunkWorkers;
  return { jobs, slow };
}

test("with the gate open a request's chunk is read and checked here, the fill's in the pool", {
  timeout: 60_000,
}, async () => {
  const corrupt = 5;
  await withReader(async (reader, home) => {
    const { s, readAt, release } = gatedStore(reader);
    const here: number[] = [];
    let stepMs = 0.1;
    let t = 0;
    const syncReads = new SyncReads({
      readAt: (fd, into, position) => {
        here.push(position);
        return readSync(fd, into, 0, into.byteLength, position);
      },
      now: () => (t += stepMs),
    });
    const loader = new WorkerChunkLoader(reader, ChunkWorkers.start(1), { readAt, syncReads });
    loader.useDigests(await PageDigests.load(reader, home));
    try {
      const fill = loader.loadOffThread(0);
      let early = 0;
      const request = loader.loadOffThread(3, "request", (page) => {
        if (page(7) !== null) early += 1;
      });
      assert.equal(early, 1, "the request's page was given before loadOffThread returned");
      assert.deepEqual(here, [reader.chunks.entry(3).offset], "the request's chunk read here");
      assert.deepEqual(s.began, [0], "the fill's chunk read in the pool");
      const want = reader.decodeChunk(3, await reader.readStoredChunk(3));
      assert.deepEqual(
        (await request)?.pages.map((p) => Buffer.from(p)),
        want.map((p) => Buffer.from(p)),
      );
      await assert.rejects(
        loader.loadOffThread(corrupt, "request") ?? Promise.resolve(),
        (error: unknown) =>
          error instanceof InvalidCheckpointError &&
          new RegExp(`^chunk ${corrupt} (does not decompress|fails its hash check)`).test(
            error.reason,
          ),
      );
      stepMs = 3; // every read now takes 6 ms: a slow store shuts the gate
      for (const c of [6, 7, 8]) await loader.loadOffThread(c, "request");
      assert.equal(syncReads.open, false);
      const pooled = loader.loadOffThread(9, "request");
      await until(() => s.began.length === 2);
      assert.deepEqual(s.began, [0, 9], "with the gate shut a request reads in the pool");
      release();
      release();
      await Promise.all([fill, pooled]);
      assert.equal(here.length, 5);
    } finally {
      await loader.close();
    }
  }, corrupt);
});

test("a request for a chunk a worker or a pooled read has is loaded here; the other is dropped", {
  timeout: 60_000,
}, async () => {
  await withReader(async (reader) => {
    const { s, readAt, release } = gatedStore(reader);
    const { jobs, slow } = heldWorker();
    const syncReads = new SyncReads();
    const loader = new WorkerChunkLoader(reader, slow, { readAt, syncReads });
    try {
      const atWorker = loader.loadOffThread(2);
      await until(() => s.held.length === 1);
      release();
      await until(() => jobs.length === 1);
      const reading = loader.loadOffThread(4);
      await until(() => s.held.length === 1);
      for (const chunk of [2, 4]) {
        let settled = false;
        const load = chunk === 2 ? atWorker : reading;
        load?.then(() => {
          settled = true;
        });
        loader.promote(chunk, "request");
        await Promise.resolve();
        assert.ok(settled, `chunk ${chunk} was loaded here at once`);
        const want = reader.decodeChunk(chunk, await reader.readStoredChunk(chunk));
        assert.deepEqual(
          (await load)?.pages.map((p) => Buffer.from(p)),
          want.map((p) => Buffer.from(p)),
        );
      }
      // The worker's late reply and the pooled read's bytes go back to the pools, unused.
      const late = new ArrayBuffer(64 * PAGE_SIZE_BYTES);
      jobs[0]?.({ id: 0, ok: true, buffer: late, digests: null });
      release();
      await until(() => s.inFlight === 0);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(jobs.length, 1, "the read already loaded here was not decoded again");
      assert.notEqual((await atWorker)?.pages[0]?.buffer, late);
    } finally {
      await loader.close();
    }
  });
});

test("with reads here shut a request still takes over a worker's chunk, through the pool", {
  timeout: 60_000,
}, async () => {
  await withReader(async (reader) => {
    const { s, readAt, release } = gatedStore(reader);
    const { jobs, slow } = heldWorker();
    const syncReads = new SyncReads();
    syncReads.close(); // as under a slow store
    const loader = new WorkerChunkLoader(reader, slow, { readAt, syncReads });
    try {
      const atWorker = loader.loadOffThread(2);
      const reading = loader.loadOffThread(4);
      await until(() => s.held.length === 2);
      release();
      await until(() => jobs.length === 1);
      loader.promote(4, "request"); // its read is in flight: no second read
      loader.promote(2, "request");
      await until(() => s.held.length === 2);
      assert.deepEqual(s.began, [2, 4, 2], "the worker's chunk is read again, nothing else");
      release(); // chunk 4, decoded here now that a request waits
      release(); // chunk 2 again, decoded here
      for (const [chunk, load] of [
        [2, atWorker],
        [4, reading],
      ] as const) {
        const got = await load;
        const expected = reader.decodeChunk(chunk, await reader.readStoredChunk(chunk));
        assert.deepEqual(
          got?.pages.map((p) => Buffer.from(p)),
          expected.map((p) => Buffer.from(p)),
        );
      }
      const late = new ArrayBuffer(64 * PAGE_SIZE_BYTES);
      jobs[0]?.({ id: 0, ok: true, buffer: late, digests: null });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(jobs.length, 1, "the chunk read in flight was decoded here, not by the worker");
      assert.notEqual((await atWorker)?.pages[0]?.buffer, late);
    } finally {
      await loader.close();
    }
  });
});
