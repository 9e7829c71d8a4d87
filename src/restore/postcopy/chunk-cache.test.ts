import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { ChunkCache, type ChunkLoader } from "./chunk-cache.ts";

/** Chunk c holds two pages filled with c and c+1; chunk `bad` fails verification. */
function fakeLoader(bad = -1): ChunkLoader & { reads: number[] } {
  const reads: number[] = [];
  return {
    reads,
    async readStoredChunk(chunk) {
      reads.push(chunk);
      return new Uint8Array(10);
    },
    decodeChunk(chunk) {
      if (chunk === bad)
        throw new InvalidCheckpointError("t", `chunk ${chunk} fails its hash check`);
      return [0, 1].map((k) => new Uint8Array(PAGE_SIZE_BYTES).fill(chunk + k));
    },
  };
}

test("the cache never holds more chunks than its capacity and evicts the least recent", async () => {
  const loader = fakeLoader();
  const cache = new ChunkCache(loader, 3);
  for (const c of [0, 1, 2]) await cache.get(c);
  await cache.get(0); // 0 is now the most recent; 1 is the least
  await cache.get(3);
  assert.equal(cache.size, 3);
  assert.deepEqual(
    [0, 1, 2, 3].map((c) => cache.has(c)),
    [true, false, true, true],
  );
  for (let c = 10; c < 100; c++) {
    cache.prefetch(c);
    assert.ok(cache.size <= 3, `size ${cache.size} after prefetching ${c}`);
  }
  await Promise.all([97, 98, 99].map((c) => cache.get(c)));
});

test("hits, misses and bytes are counted; a hit does not read again", async () => {
  const loader = fakeLoader();
  const cache = new ChunkCache(loader, 2);
  const pages = await cache.get(5);
  assert.equal(pages[1]?.[0], 6);
  await cache.get(5);
  cache.prefetch(5);
  cache.prefetch(6);
  await cache.get(6);
  assert.deepEqual(loader.reads, [5, 6]);
  assert.deepEqual(cache.stats, {
    hits: 2,
    misses: 2,
    bytesRead: 20,
    bytesDecompressed: 4 * PAGE_SIZE_BYTES,
  });
});

test("a chunk that fails verification rejects get, is not kept, and a prefetch does not leak", async () => {
  const cache = new ChunkCache(fakeLoader(7), 4);
  cache.prefetch(7); // no unhandled rejection even if nobody asks
  await assert.rejects(cache.get(7), /chunk 7 fails its hash check/);
  assert.equal(cache.has(7), false);
  await assert.rejects(cache.get(7), InvalidCheckpointError);
});
