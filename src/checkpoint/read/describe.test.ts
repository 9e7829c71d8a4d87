import assert from "node:assert/strict";
import { test } from "node:test";
import { tempStore, writeSmall } from "../test-support.ts";
import { describeCheckpoint, formatCheckpoint } from "./describe.ts";
import { CheckpointReader } from "./reader.ts";

test("describeCheckpoint is JSON-able and formatCheckpoint shows the statistics", async () => {
  const t = await tempStore();
  try {
    await writeSmall(t.store, "demo@1");
    const reader = await CheckpointReader.open(t.store, "demo@1");
    const desc = describeCheckpoint(reader);
    await reader.close();
    assert.deepEqual(JSON.parse(JSON.stringify(desc)), desc);
    assert.equal(desc.statistics.pagesTotal, 18);
    assert.equal(desc.stream.configurationBytes, 3);
    const text = formatCheckpoint(desc);
    assert.match(text, /^checkpoint demo@1 \(format 1\.0\), created 2026-01-02T03:04:05\.000Z$/m);
    assert.match(text, /RAM {6}72\.0 KiB in 2 block\(s\): ram0 64\.0 KiB, rom 8\.0 KiB/);
    assert.match(text, /18 total: 4 zero \(2 never sent\), 14 stored/);
    assert.match(text, /13 unique contents, 1 duplicates/);
  } finally {
    await t.cleanup();
  }
});
