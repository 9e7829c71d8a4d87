/**
 * The settle rule against synthetic request timelines: time is given, never slept. Each
 * timeline is fed to TraceSettle as a trace would be, and checked once a bucket, as the
 * demand-only window does.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type SettleRule, TraceSettle } from "./trace-window.ts";

const RULE: SettleRule = { bucketMs: 250, quietMs: 4_000, ratio: 0.02 };

interface Request {
  readonly tMs: number;
  readonly page: number;
}

/**
 * Feeds `requests` (in time order) and checks the rule after every bucket; returns when it
 * first said settled (null: not within maxMs) and the distinct pages seen by then.
 */
function closeTime(
  requests: readonly Request[],
  maxMs = 120_000,
): { atMs: number | null; pages: number } {
  const settle = new TraceSettle(RULE);
  const seen = new Set<number>();
  let i = 0;
  for (let now = RULE.bucketMs; now <= maxMs; now += RULE.bucketMs) {
    for (; i < requests.length && (requests[i]?.tMs ?? 0) <= now; i++) {
      const r = requests[i];
      assert(r !== undefined);
      const first = !seen.has(r.page);
      seen.add(r.page);
      settle.record(r.tMs, first);
    }
    if (settle.settled(now)) return { atMs: now, pages: seen.size };
  }
  return { atMs: null, pages: seen.size };
}

/** `count` requests for pages from..from+count-1, evenly over [startMs, endMs). */
function burst(from: number, count: number, startMs: number, endMs: number): Request[] {
  return Array.from({ length: count }, (_, k) => ({
    tMs: startMs + ((endMs - startMs) * k) / count,
    page: from + k,
  }));
}

/** A deterministic PRNG (mulberry32), so the random hot writer is the same every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A hot writer: `ratePerS` writes a second to random pages of a hot set of `pages`. */
function hotWriter(pages: number, ratePerS: number, untilMs: number, seed = 1): Request[] {
  const rnd = random(seed);
  const out: Request[] = [];
  for (let t = 0; t < untilMs; t += 1000 / ratePerS)
    out.push({ tMs: t, page: 1_000_000 + Math.floor(rnd() * pages) });
  return out;
}

function byTime(...parts: Request[][]): Request[] {
  return parts.flat().sort((a, b) => a.tMs - b.tMs);
}

test("a guest that touches nothing new after its start settles one quiet span later", () => {
  const { atMs, pages } = closeTime(burst(0, 300, 0, 200));
  assert.equal(pages, 300);
  assert.equal(atMs, 4_250, "the first bucket has left the quiet span");
});

test("a trace with no request at all settles after the quiet span", () => {
  assert.equal(closeTime([]).atMs, RULE.quietMs);
});

test("repeated requests for pages already seen are not new pages", () => {
  const again = Array.from({ length: 2_000 }, (_, k) => ({ tMs: 300 + k * 5, page: k % 10 }));
  const { atMs } = closeTime(byTime(burst(0, 10, 0, 100), again));
  assert.equal(atMs, 4_250, "ten pages asked for again and again is a settled trace");
});

test("a sweep that starts up to a quiet span after the start is waited for, to its end", () => {
  // Start-up faults, a 1.9 s lull (the sweeper's next period), then a 40 960-page sweep
  // demand-paged at ~1 600 pages/s (25.6 s), then nothing new.
  const sweepStartMs = 2_000;
  const sweepEndMs = sweepStartMs + 25_600;
  const trace = byTime(burst(0, 150, 0, 100), burst(1_000, 40_960, sweepStartMs, sweepEndMs));
  const { atMs, pages } = closeTime(trace);
  assert.equal(pages, 150 + 40_960, "the whole sweep is in the window");
  assert.ok(atMs !== null && atMs > sweepEndMs, `closed at ${atMs}`);
  assert.ok(atMs <= sweepEndMs + RULE.quietMs + RULE.bucketMs, `closed at ${atMs}`);
});

test("a sweep with a slow stretch in it (a loaded host) does not close the window", () => {
  // 10 s at full rate, 3 s at a tenth of it, 10 s at full rate again.
  const trace = byTime(
    burst(0, 100, 0, 100),
    burst(1_000, 16_000, 500, 10_500),
    burst(20_000, 480, 10_500, 13_500),
    burst(30_000, 16_000, 13_500, 23_500),
  );
  const { atMs, pages } = closeTime(trace);
  assert.equal(pages, 100 + 16_000 + 480 + 16_000);
  assert.ok(atMs !== null && atMs > 23_500, `closed at ${atMs}`);
});

test("a random hot writer settles once ~98% of its hot set has been seen", () => {
  // 2 048 hot pages, 2 000 writes/s: new pages decay like exp(-t), never quite to zero.
  const hot = 2_048;
  const trace = byTime(burst(0, 200, 0, 150), hotWriter(hot, 2_000, 60_000));
  const { atMs, pages } = closeTime(trace);
  assert.ok(atMs !== null && atMs < 20_000, `closed at ${atMs}`);
  const hotSeen = pages - 200;
  assert.ok(hotSeen >= 0.97 * hot, `${hotSeen} of ${hot} hot pages seen`);
});

test("a guest that keeps touching new pages at its peak rate never settles", () => {
  const { atMs } = closeTime(burst(0, 60_000, 0, 60_000), 60_000);
  assert.equal(atMs, null, "only the window's bound ends such a trace");
});

test("a periodic task rarer than the quiet span is not waited for", () => {
  // The documented limit: a scan that first runs 6 s after the start falls after the close.
  const trace = byTime(burst(0, 100, 0, 100), burst(1_000, 5_000, 6_000, 9_000));
  assert.equal(closeTime(trace).atMs, 4_250);
});

test("the rule refuses a quiet span that is not whole buckets, or a ratio outside [0, 1)", () => {
  assert.throws(() => new TraceSettle({ bucketMs: 250, quietMs: 1_100, ratio: 0.02 }));
  assert.throws(() => new TraceSettle({ bucketMs: 250, quietMs: 100, ratio: 0.02 }));
  assert.throws(() => new TraceSettle({ bucketMs: 250, quietMs: 1_000, ratio: 1 }));
});

test("requests before the guest ran count in the first bucket", () => {
  const settle = new TraceSettle(RULE);
  settle.record(-30, true);
  settle.record(10, true);
  assert.equal(settle.distinctPages, 2);
  assert.equal(settle.peakBucketPages, 2);
  assert.equal(settle.recentPages(RULE.quietMs), 2);
  assert.equal(settle.recentPages(RULE.quietMs + RULE.bucketMs), 0);
});
