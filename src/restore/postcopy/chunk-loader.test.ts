import assert from "node:assert/strict";
import { read } from "node:fs";
import { rm } from "node:fs/promises";
import { test } from "node:test";
import { packIdOf } from "../../checkpoint/format/manifest.ts";
import { ChunkWorkers, PageDigests } from "../../checkpoint/index.ts";
import { DigestCache } from "../../checkpoint/store/digest-cache.ts";
import { prng, randomBytes } from "../../checkpoint/test-support.ts";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES, RESTORE_READS_IN_FLIGHT_CHUNKS } from "../../limits.ts";
import { WorkerChunkLoader } from "./chunk-loader.ts";
import type { ReadAt } from "./stored-read.ts";

import { CHUNKS, gatedStore, until, withReader } from "./test-support-loader.ts";

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

test("a raw chunk decoded here keeps its stored buffer, which the next read gets back", {
  timeout: 60_000,
}, async () => {
  const rand = prng(7);
  await withReader(
    async (reader) => {
      assert.equal(reader.chunks.entry(0).codec, 0, "random pages are stored raw");
      const buffers: ArrayBufferLike[] = [];
      const readAt: ReadAt = (fd, into, position) => {
        buffers.push(into.buffer);
        return new Promise((resolve, reject) =>
          read(fd, into, 0, into.byteLength, position, (e, n) => (e ? reject(e) : resolve(n))),
        );
      };
      const loader = new WorkerChunkLoader(reader, ChunkWorkers.onFirstJob(1), { readAt });
      try {
        const first = await loader.loadOffThread(0, "prelude");
        const want = reader.decodeChunk(0, await reader.readStoredChunk(0));
        assert.deepEqual(
          first?.pages.map((p) => Buffer.from(p)),
          want.map((p) => Buffer.from(p)),
        );
        assert.equal(first?.pages[0]?.buffer, buffers[0], "no copy: the pages view the read");
        loader.recycle(first?.pages ?? []);
        const second = await loader.loadOffThread(1, "request");
        assert.equal(buffers[1], buffers[0], "the evicted chunk's buffer took the next read");
        assert.equal(second?.pages[63]?.byteLength, PAGE_SIZE_BYTES);
      } finally {
        await loader.close();
      }
    },
    null,
    () => randomBytes(rand, PAGE_SIZE_BYTES),
  );
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

/** Loads `chunk` for a request; what its EarlyPages got: slots given (copied) and refused. */
async function loadEarly(loader: WorkerChunkLoader, chunk: number) {
  const early = { calls: 0, given: new Map<number, Buffer>(), refused: [] as number[] };
  const loaded = loader.loadOffThread(chunk, "request", (page) => {
    early.calls += 1;
    for (let s = 0; s < 64; s++) {
      const p = page(s);
      if (p === null) early.refused.push(s);
      else early.given.set(s, Buffer.from(p));
    }
  });
  assert.ok(loaded !== null, "a pack chunk loads through the loader");
  return { early, loaded };
}

test("with the store's digests a request's pages are given one by one, each the reader's", {
  timeout: 60_000,
}, async () => {
  await withReader(async (reader, home) => {
    const digests = await PageDigests.load(reader, home);
    assert.equal(digests.cachedChunks, CHUNKS, "the save left every chunk's digests");
    const loader = new WorkerChunkLoader(reader, ChunkWorkers.start(1));
    try {
      const before = await loadEarly(loader, 2);
      await before.loaded;
      assert.equal(before.early.calls, 0, "no digests yet: the chunk is checked whole");
      loader.useDigests(digests);
      const { early, loaded } = await loadEarly(loader, 5);
      let settled = false;
      const got = await loaded.then((l) => {
        settled = true;
        return l;
      });
      assert.ok(settled && early.calls === 1 && early.refused.length === 0);
      const want = reader.decodeChunk(5, await reader.readStoredChunk(5));
      for (let s = 0; s < 64; s++) {
        assert.deepEqual(early.given.get(s), Buffer.from(want[s] ?? []), `slot ${s}`);
        assert.deepEqual(Buffer.from(got.pages[s] ?? []), Buffer.from(want[s] ?? []));
      }
      const fill = await loader.loadOffThread(6);
      assert.equal(fill?.pages.length, 64, "a fill load has no early pages and still loads");
    } finally {
      await loader.close();
    }
  });
});

test("a page that does not match its digest is never given; the load rejects naming the chunk", {
  timeout: 60_000,
}, async () => {
  await withReader(async (reader, home) => {
    const digests = await PageDigests.load(reader, home);
    const loader = new WorkerChunkLoader(reader, ChunkWorkers.start(1));
    try {
      // The store hands back chunk 5 with one bit of its slot 10 flipped after decompression.
      loader.useDigests({
        forChunk: (c) => digests.forChunk(c),
        matches: (page, list, slot) => digests.matches(page, list, slot),
        corrupt: (c) => digests.corrupt(c),
        decompress: (c, stored) => {
          const raw = Buffer.from(digests.decompress(c, stored));
          const at = 10 * PAGE_SIZE_BYTES + 7;
          if (c === 5) raw.writeUInt8(raw.readUInt8(at) ^ 0x10, at);
          return raw;
        },
      });
      const { early, loaded } = await loadEarly(loader, 5);
      await assert.rejects(
        loaded,
        (error: unknown) =>
          error instanceof InvalidCheckpointError &&
          /^chunk 5 fails its hash check/.test(error.reason),
      );
      assert.deepEqual(early.refused, [10]);
      assert.equal(early.given.size, 63, "the pages that match are still good");
    } finally {
      await loader.close();
    }
  });
});

test("cached digests that do not hash to the chunk's hash are not trusted", {
  timeout: 60_000,
}, async () => {
  await withReader(async (reader, home) => {
    const id = packIdOf(reader.manifest);
    const cache = new DigestCache(home);
    const cached = await cache.load(id);
    const e = reader.chunks.entry(4);
    const wrong = Buffer.from(cached.get(e.offset) ?? []);
    wrong[3] = (wrong[3] ?? 0) ^ 1;
    await cache.save(id, new Map([[e.offset, wrong]]));
    const digests = await PageDigests.load(reader, home);
    assert.equal(digests.forChunk(4), null);
    assert.ok(digests.forChunk(3) !== null, "the other chunks' digests still check");
    await rm(cache.dir, { recursive: true });
    assert.equal((await PageDigests.load(reader, home)).forChunk(3), null, "no cache: none");
  });
});
