import assert from "node:assert/strict";
import { test } from "node:test";
import { LatencyRecorder, percentile, RequestTrace } from "./trace.ts";

test("the trace keeps requests in arrival order up to its bound and counts the rest", () => {
  const trace = new RequestTrace(2);
  for (let i = 0; i < 5; i++) trace.record({ block: 0, page: i, tMs: i, inFlight: false });
  assert.deepEqual(
    trace.records.map((r) => r.page),
    [0, 1],
  );
  assert.equal(trace.dropped, 3);
});

test("nearest-rank percentiles", () => {
  const values = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(values, 0.5), 50);
  assert.equal(percentile(values, 0.99), 99);
  assert.equal(percentile(values, 1), 100);
  assert.equal(percentile(new Float64Array(0), 0.5), 0);
  const recorder = new LatencyRecorder(3);
  for (const ms of [5, 1, 3, 100]) recorder.add(ms);
  assert.deepEqual(recorder.summary(), { count: 4, p50Ms: 3, p99Ms: 5, maxMs: 100 });
});
