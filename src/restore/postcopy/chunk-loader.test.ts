import assert from "node:assert/strict";
import { read } from "node:fs";
import { test } from "node:test";
import { FileName } from "../../checkpoint/format/format.ts";
import { CheckpointReader, ChunkWorkers } from "../../checkpoint/index.ts";
import { flipBit, tempStore, textPage } from "../../checkpoint/test-support.ts";
import { beginCheckpoint } from "../../checkpoint/write/writer.ts";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES, RESTORE_READS_IN_FLIGHT_CHUNKS } from "../../limits.ts";
import { type ReadAt, WorkerChunkLoader } from "./chunk-loader.ts";

const CHUNKS = 12;

/** A checkpoint of CHUNKS chunks of 64 text pages each (zstd); `corrupt`: a bit of it flipped. */
async function withReader(
  body: (reader: CheckpointReader) => Promise<void>,
  corrupt: number | null = null,
): Promise<void> {
  const t = await tempStore();
  try {
    const w = await beginCheckpoint(t.store, {
      name: "c",
      vm: {},
      qemu: {},
      stream: { configuration: new Uint8Array(0) },
    });
    w.setRamBlocks([{ name: "ram", lengthBytes: CHUNKS * 64 * PAGE_SIZE_BYTES }]);
    for (let p = 0; p < CHUNKS * 64; p++) await w.putPage(0, p, textPage(p));
    w.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
    const listing = await w.commit();
    if (corrupt !== null) {
      const probe = await CheckpointReader.open(t.store, "c");
      const e = probe.chunks.entry(corrupt);
      await probe.close();
      await flipBit(listing.dir, FileName.pack, e.offset + Math.floor(e.storedBytes / 2));
    }
    const reader = await CheckpointReader.open(t.store, "c");
    try {
      await body(reader);
    } finally {
      await reader.close();
    }
  } finally {
    await t.cleanup();
  }
}

/** A store whose reads wait until released: counts those in flight and the order they began. */
function gatedStore(reader: CheckpointReader) {
  const chunkAt = new Map<number, number>();
  for (let c = 0; c < CHUNKS; c++) chunkAt.set(reader.chunks.entry(c).offset, c);
  const held: (() => void)[] = [];
  const s = { inFlight: 0, most: 0, began: [] as number[], held };
  const readAt: ReadAt = (fd, into, position) => {
    s.inFlight += 1;
    s.most = Math.max(s.most, s.inFlight);
    s.began.push(chunkAt.get(position) ?? -1);
    return new Promise((resolve, reject) => {
      held.push(() =>
        read(fd, into, 0, into.byteLength, position, (error, n) => {
          s.inFlight -= 1;
          if (error === null) resolve(n);
          else reject(error);
        }),
      );
    });
  };
  return { s, readAt, release: () => held.shift()?.() };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

test("reads overlap beyond the decode threads, up to the limit, and pages match the reader's", {
  timeout: 60_000,
}, async () => {
  await withReader(async (reader) => {
    const { s, readAt, release } = gatedStore(reader);
    const loader = new WorkerChunkLoader(reader, ChunkWorkers.start(2), { readAt });
    try {
      const loads = Array.from({ length: 3 * CHUNKS }, (_, i) => loader.loadOffThread(i % CHUNKS));
      await until(() => s.inFlight === RESTORE_READS_IN_FLIGHT_CHUNKS);
      assert.ok(s.inFlight > 2, "more reads in flight than decode threads");
      let done = 0;
      for (const l of loads) l?.then(() => void done++);
      while (done < loads.length) {
        release();
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.equal(s.most, RESTORE_READS_IN_FLIGHT_CHUNKS);
      for (const [i, l] of loads.entries()) {
        const c = i % CHUNKS;
        const want = reader.decodeChunk(c, await reader.readStoredChunk(c));
        const got = await l;
        assert.deepEqual(
          got?.pages.map((p) => Buffer.from(p)),
          want.map((p) => Buffer.from(p)),
        );
      }
    } finally {
      await loader.close();
    }
  });
});

test("requests are read first, then the prelude (promoted loads too); close rejects the rest", {
  timeout: 60_000,
}, async () => {
  await withReader(async (reader) => {
    const { s, readAt, release } = gatedStore(reader);
    const opts = { readAt, readsInFlight: 1 };
    const loader = new WorkerChunkLoader(reader, ChunkWorkers.start(1), opts);
    const fill = [0, 1, 2, 3, 4, 5].map((c) => loader.loadOffThread(c));
    const prelude = loader.loadOffThread(6, "prelude");
    loader.promote(4, "prelude");
    const request = loader.loadOffThread(8, "request");
    for (let n = 1; n <= 4; n++) {
      await until(() => s.held.length === 1 && s.began.length === n);
      release();
    }
    await until(() => s.held.length === 1 && s.began.length === 5);
    await Promise.all([fill[0], fill[4], prelude, request]);
    assert.deepEqual(s.began.slice(0, 5), [0, 8, 4, 6, 1]);
    const pending = [...fill.slice(1, 4), fill[5]].map((l) =>
      l?.then(
        () => "loaded",
        (error: Error) => error.message,
      ),
    );
    const closing = loader.close();
    release(); // chunk 1's read ends after close: its load rejects too
    await closing;
    for (const outcome of await Promise.all(pending)) assert.match(outcome ?? "", /closed/);
  });
});

test("a request's read starts while the fill's reads wait for a busy decode thread", {
  timeout: 60_000,
}, async () => {
  await withReader(async (reader) => {
    const { s, readAt, release } = gatedStore(reader);
    const held: ((error: Error) => void)[] = [];
    const stuck = {
      size: 1,
      run: () => new Promise((_, reject) => held.push(reject)),
      close: async () => {
        for (const reject of held) reject(new Error("closed"));
      },
    } as unknown as ChunkWorkers;
    const loader = new WorkerChunkLoader(reader, stuck, { readAt, readsInFlight: 2 });
    const loads = [0, 1, 2, 3, 4, 5].map((c) => loader.loadOffThread(c));
    for (const l of loads) l?.catch(() => undefined);
    for (let n = 0; n < 3; n++) {
      await until(() => s.held.length > 0);
      release();
    }
    await until(() => s.inFlight === 0 && held.length === 1);
    assert.deepEqual(s.began, [0, 1, 2], "fill reads stop while two wait to be decoded");
    const request = loader.loadOffThread(7, "request");
    await until(() => s.began.length === 4);
    assert.equal(s.began[3], 7);
    // Decoded on this thread (ADR 0018): it loads although the only decode thread is stuck.
    release();
    const want = reader.decodeChunk(7, await reader.readStoredChunk(7));
    const got = await request;
    assert.deepEqual(
      got?.pages.map((p) => Buffer.from(p)),
      want.map((p) => Buffer.from(p)),
    );
    assert.equal(held.length, 1, "the decode thread got no other job");
    await loader.close();
    release();
  });
});

test("a corrupt chunk rejects with the reader's error naming it; the others still load", {
  timeout: 60_000,
}, async () => {
  await withReader(async (reader) => {
    const loader = new WorkerChunkLoader(reader, ChunkWorkers.start(2));
    try {
      const own = await reader
        .readStoredChunk(3)
        .then((stored) => reader.decodeChunk(3, stored))
        .then(
          () => assert.fail("the reader decodes a corrupt chunk"),
          (error: unknown) => error,
        );
      assert.ok(own instanceof InvalidCheckpointError);
      assert.match(own.reason, /^chunk 3 /);
      await assert.rejects(
        async () => loader.loadOffThread(3),
        (error: unknown) => error instanceof InvalidCheckpointError && error.reason === own.reason,
      );
      await assert.rejects(
        async () => loader.loadOffThread(3, "request"),
        (error: unknown) => error instanceof InvalidCheckpointError && error.reason === own.reason,
        "decoded on this thread, it is checked as a worker checks it",
      );
      const ok = await loader.loadOffThread(4);
      assert.equal(ok?.pages.length, 64);
      const asked = await loader.loadOffThread(5, "request");
      const want = reader.decodeChunk(5, await reader.readStoredChunk(5));
      assert.deepEqual(
        asked?.pages.map((p) => Buffer.from(p)),
        want.map((p) => Buffer.from(p)),
      );
    } finally {
      await loader.close();
    }
  }, 3);
});
