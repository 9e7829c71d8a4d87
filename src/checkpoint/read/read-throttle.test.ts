import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../../errors.ts";
import { parseThrottleLimits, ReadThrottle } from "./read-throttle.ts";

test("the limits parse from <MB/s>,<latency ms> and anything else says the form", () => {
  assert.deepEqual(parseThrottleLimits("200,5"), { mbps: 200, latencyMs: 5 });
  assert.deepEqual(parseThrottleLimits(" 50 , 0 "), { mbps: 50, latencyMs: 0 });
  for (const bad of ["", "200", "200,", ",5", "0,5", "200,-1", "200,5,1", "fast,5", "200,2000"])
    assert.throws(() => parseThrottleLimits(bad), UsageError, bad);
});

test("latencies of reads in flight overlap, their bytes share the link", () => {
  const t = new ReadThrottle({ mbps: 200, latencyMs: 5 }); // 200 bytes a µs: 200_000 a ms
  // One 1 MB read alone: 5 ms latency + 5 ms on the link.
  assert.equal(t.book(1_000_000, 0), 10);
  // Two reads issued together at t=100: both wait 5 ms, then share the link one after the other.
  assert.equal(t.book(1_000_000, 100), 110);
  assert.equal(t.book(1_000_000, 100), 115);
  // A read whose latency ends while the link is still busy waits for the link (115), then 1 ms.
  assert.equal(t.book(200_000, 106), 116);
  // Sequential small reads are latency-bound: 256 KiB at 200 MB/s is 1.31 ms, plus 5 ms each.
  const s = new ReadThrottle({ mbps: 200, latencyMs: 5 });
  let now = 0;
  for (let i = 0; i < 10; i++) now = s.book(262_144, now);
  assert.ok(Math.abs(now - 10 * (5 + 262_144 / 200_000)) < 1e-9);
});

test("read() waits out the modelled time after the real read", async () => {
  let clock = 0;
  const t = new ReadThrottle({ mbps: 1000, latencyMs: 2 }, () => clock);
  const started = performance.now();
  const value = await t.read(1_000_000, async () => {
    clock = 1; // the real read took 1 ms of the 3 ms modelled
    return 7;
  });
  assert.equal(value, 7);
  assert.ok(performance.now() - started >= 1, "slept the remaining ~2 ms");
});
