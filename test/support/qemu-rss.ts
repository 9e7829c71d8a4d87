/**
 * QEMU's resident memory, to see free page reporting happen from the host: guest pages QEMU
 * holds count in its RSS; pages the guest reported and QEMU discarded leave it.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

const MIB = 2 ** 20;
/** Free page reporting waits ~2 s after a free; TCG and a loaded machine add to it. */
const REPORT_DEADLINE_MS = 90_000;
/**
 * RSS samples while the guest fills and frees memory: a report comes ~2 s after the free, so
 * the peak is held far longer than this.
 */
const SAMPLE_INTERVAL_MS = 50;

/** VmRSS of process `pid`, in bytes. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/**
 * Runs `work` (the guest fills memory, then frees it) and waits until QEMU gives back `bytes`
 * of the most it held meanwhile. The peak is sampled from before `work` starts, not read once
 * after it: under a loaded TCG host the report can land before `work` returns, and a
 * baseline read then would ask for a second drop that never comes. Fails after
 * REPORT_DEADLINE_MS.
 */
export async function reportedAfter<T>(
  pid: number,
  bytes: number,
  work: () => Promise<T>,
  what = "the guest",
): Promise<T> {
  let peak = await rssBytes(pid);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await rssBytes(pid));
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_INTERVAL_MS));
    }
  })();
  let result: T;
  try {
    result = await work();
  } finally {
    sampling = false;
    await sampler;
  }
  const end = performance.now() + REPORT_DEADLINE_MS;
  for (let rss = await rssBytes(pid); rss > peak - bytes; rss = await rssBytes(pid)) {
    if (performance.now() > end) {
      assert.fail(
        `${what}: QEMU still holds ${(rss / MIB).toFixed(0)} MiB (at most ` +
          `${(peak / MIB).toFixed(0)} MiB since the guest filled its memory): no free page report`,
      );
    }
    peak = Math.max(peak, rss);
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_INTERVAL_MS * 5));
  }
  return result;
}

/**
 * Free page reporting hands pages back in batches ~2 s apart: RSS that has not fallen by a MiB
 * for this long has had every report the guest was going to send for what it freed.
 */
const REPORTS_QUIET_MS = 4_000;

/**
 * Waits until QEMU's RSS stops falling (no drop of a MiB for REPORTS_QUIET_MS), so that a save
 * right after sees every page the guest has reported, not the first batches only. Fails after
 * REPORT_DEADLINE_MS.
 */
export async function reportsSettled(pid: number, what = "the guest"): Promise<void> {
  const end = performance.now() + REPORT_DEADLINE_MS;
  let low = await rssBytes(pid);
  let since = performance.now();
  while (performance.now() - since < REPORTS_QUIET_MS) {
    if (performance.now() > end) assert.fail(`${what}: QEMU's RSS kept falling for 90 s`);
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_INTERVAL_MS * 5));
    const rss = await rssBytes(pid);
    if (rss < low - MIB) since = performance.now();
    low = Math.min(low, rss);
  }
}
