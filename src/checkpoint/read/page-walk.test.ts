import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { rejectionsChecked } from "../../test-support.ts";
import type { ChunkTable } from "../format/chunk-table.ts";
import type { PageMap } from "../format/page-map.ts";
import type { ChunkWorkers } from "./chunk-workers.ts";
import { type ParallelChunkSource, walkChunksParallel } from "./page-walk.ts";

/** Three chunks decoded on this thread; chunk 1's decode fails its check (then `failed`). */
function sourceWithBadChunk(failed: () => void = () => undefined): ParallelChunkSource {
  return {
    chunks: { count: 3 } as ChunkTable, // the walk reads only the count
    pageMap: {} as PageMap,
    readStoredChunk: async () => new Uint8Array(PAGE_SIZE_BYTES),
    decodeChunk: (chunk, stored) => {
      if (chunk === 1) {
        failed();
        throw new InvalidCheckpointError("t", "chunk 1 fails its hash check");
      }
      return [stored];
    },
    decodeJobOf: () => null,
    workerError: () => new Error("no worker is used"),
  };
}

test("a chunk that fails its check while queued is reported by the walk, never unhandled", async () => {
  const unhandled: unknown[] = [];
  const note = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", note);
  try {
    const seen: number[] = [];
    const { promise: chunk1Failed, resolve } = Promise.withResolvers<void>();
    await assert.rejects(
      walkChunksParallel(
        sourceWithBadChunk(resolve),
        null,
        async (chunk) => {
          seen.push(chunk);
          // Chunk 0 is consumed until chunk 1 has failed and Node has checked its rejection
          // for a handler: a queued chunk's unobserved failure would be reported by then.
          await chunk1Failed;
          await rejectionsChecked();
        },
        null,
        {} as ChunkWorkers, // decodeJobOf is null: no job reaches the workers
      ),
      /chunk 1 fails its hash check/,
    );
    assert.deepEqual(seen, [0]);
    await rejectionsChecked();
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", note);
  }
});

test("a verify walk records the bad chunk and goes on to the next", async () => {
  const problems: string[] = [];
  const seen: number[] = [];
  await walkChunksParallel(
    sourceWithBadChunk(),
    null,
    (chunk) => {
      seen.push(chunk);
    },
    problems,
    {} as ChunkWorkers,
  );
  assert.deepEqual(seen, [0, 2]);
  assert.deepEqual(problems, ["chunk 1 fails its hash check"]);
});
