import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { InvalidCheckpointError } from "../errors.ts";
import { listSources, loadWorkingSet, removeWorkingSets, saveWorkingSet } from "./store.ts";
import { refineWorkingSet, workingSetFromTrace, workingSetFromWrites } from "./working-set.ts";

test("a traced working set keeps each page once, at its first request, in order", () => {
  const ws = workingSetFromTrace([
    { block: 0, page: 5, tMs: 1 },
    { block: 0, page: 7, tMs: 2 },
    { block: 0, page: 5, tMs: 3 },
    { block: 1, page: 5, tMs: 4 },
  ]);
  assert.deepEqual(
    ws.pages.map((p) => [p.block, p.page, p.firstMs]),
    [
      [0, 5, 1],
      [0, 7, 2],
      [1, 5, 4],
    ],
  );
});

test("refinement is the union at earliest first access, bounded by size", () => {
  const a = workingSetFromTrace([
    { block: 0, page: 1, tMs: 10 },
    { block: 0, page: 2, tMs: 20 },
  ]);
  const b = workingSetFromTrace([
    { block: 0, page: 2, tMs: 5 },
    { block: 0, page: 3, tMs: 30 },
  ]);
  const u = refineWorkingSet(a, b);
  assert.equal(u.source, "union");
  assert.deepEqual(
    u.pages.map((p) => [p.page, p.firstMs]),
    [
      [2, 5],
      [1, 10],
      [3, 30],
    ],
  );
  assert.equal(refineWorkingSet(a, b, 2).pages.length, 2);
});

test("working sets round-trip through the store; the refined one is preferred", async () => {
  const home = await mkdtemp(join(tmpdir(), "sw-wss-"));
  try {
    assert.equal(await loadWorkingSet(home, "c@1"), null);
    await saveWorkingSet(home, "c@1", workingSetFromWrites([{ block: 0, page: 9 }]));
    await saveWorkingSet(home, "c@1", workingSetFromTrace([{ block: 1, page: 3, tMs: 7 }]));
    assert.deepEqual(await listSources(home, "c@1"), ["trace", "write-set"]);
    const ws = await loadWorkingSet(home, "c@1");
    assert.equal(ws?.source, "trace");
    assert.deepEqual(ws?.pages, [{ block: 1, page: 3, firstMs: 7 }]);
    assert.equal((await loadWorkingSet(home, "c@1", "write-set"))?.pages[0]?.page, 9);
    await removeWorkingSets(home, "c@1");
    assert.deepEqual(await listSources(home, "c@1"), []);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

test("a damaged working-set file is a clear error, not a silent wrong prefetch", async () => {
  const home = await mkdtemp(join(tmpdir(), "sw-wss-"));
  try {
    const file = await saveWorkingSet(home, "c@1", workingSetFromWrites([{ block: 0, page: 1 }]));
    for (const text of [
      "{",
      '{"format":"other","version":1,"pages":[]}',
      '{"format":"snapwake-working-set","version":1,"pages":[[0,-1,0]]}',
    ]) {
      await writeFile(file, text);
      await assert.rejects(loadWorkingSet(home, "c@1"), InvalidCheckpointError);
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
