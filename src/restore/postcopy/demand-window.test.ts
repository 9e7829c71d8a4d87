/**
 * The demand-only window on mocked timers and an injected clock: when it closes, why, and
 * that no timer outlives it.
 */
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { DemandWindow } from "./demand-window.ts";

/** A clock the mocked timers move: tick(ms) advances both. */
function fakeTime() {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  let nowMs = 1_000; // not 0: the window measures from start()
  return {
    now: () => nowMs,
    tick(ms: number, stepMs = 50) {
      for (let done = 0; done < ms; done += stepMs) {
        nowMs += stepMs;
        mock.timers.tick(stepMs);
      }
    },
  };
}

test("a window with no requests settles one quiet span after the guest runs", (t) => {
  t.after(() => mock.timers.reset());
  const time = fakeTime();
  const w = new DemandWindow({ maxMs: 60_000 }, time.now);
  w.start();
  w.onRequest(5, true);
  w.onRequest(6, true);
  time.tick(4_000);
  assert.equal(w.isOpen(), true, "the start-up bucket is still inside the quiet span");
  time.tick(250);
  assert.equal(w.isOpen(), false);
  assert.deepEqual(w.report, {
    closedAtMs: 4_250,
    end: "settled",
    fixed: false,
    maxMs: 60_000,
    distinctPages: 2,
    peakBucketPages: 2,
  });
});

test("new pages at a steady rate keep the window open until its bound", (t) => {
  t.after(() => mock.timers.reset());
  const time = fakeTime();
  const w = new DemandWindow({ maxMs: 10_000 }, time.now);
  w.start();
  for (let ms = 0; ms < 10_000; ms += 50) {
    w.onRequest(ms, true);
    time.tick(50);
  }
  assert.equal(w.isOpen(), false);
  assert.equal(w.report?.end, "bound");
  assert.equal(w.report?.closedAtMs, 10_000);
  assert.equal(w.report?.distinctPages, 200);
});

test("a fixed window ignores settling and closes exactly at its length", async (t) => {
  t.after(() => mock.timers.reset());
  const time = fakeTime();
  const w = new DemandWindow({ maxMs: 7_000, fixed: true }, time.now);
  let closed = false;
  w.closed.then(() => {
    closed = true;
  });
  w.start();
  time.tick(6_950);
  assert.equal(w.isOpen(), true);
  time.tick(50);
  assert.equal(w.isOpen(), false);
  assert.deepEqual([w.report?.end, w.report?.closedAtMs, w.report?.fixed], ["bound", 7_000, true]);
  await Promise.resolve();
  assert.equal(closed, true, "closed resolves");
});

test("close() wins once: later closes, requests and timers change nothing", (t) => {
  t.after(() => mock.timers.reset());
  const time = fakeTime();
  const w = new DemandWindow({ maxMs: 5_000 }, time.now);
  w.start();
  w.onRequest(1, true);
  time.tick(1_000);
  w.close("filled");
  w.close("failed");
  w.onRequest(1_100, true);
  time.tick(10_000);
  assert.deepEqual(
    [w.report?.end, w.report?.closedAtMs, w.report?.distinctPages],
    ["filled", 1_000, 1],
  );
});

test("a window closed before it started sets no timer", (t) => {
  t.after(() => mock.timers.reset());
  const time = fakeTime();
  const w = new DemandWindow({ maxMs: 5_000 }, time.now);
  w.close("failed");
  w.start();
  time.tick(6_000);
  assert.equal(w.report?.end, "failed");
});
