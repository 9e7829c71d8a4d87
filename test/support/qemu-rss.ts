/**
 * QEMU's resident memory, to see free page reporting happen from the host: guest pages QEMU
 * holds count in its RSS; pages the guest reported and QEMU discarded leave it.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

const MIB = 2 ** 20;
/** Free page reporting waits ~2 s after a free; TCG and a loaded machine add to it. */
const REPORT_DEADLINE_MS = 90_000;
const POLL_INTERVAL_MS = 250;

/** VmRSS of process `pid`, in bytes. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
}

/**
 * Waits until QEMU gives back `bytes` of what it holds now: call it right after the guest
 * freed memory (reports come ~2 s later). Fails after REPORT_DEADLINE_MS.
 */
export async function waitForReported(pid: number, bytes: number): Promise<void> {
  const target = (await rssBytes(pid)) - bytes;
  const end = performance.now() + REPORT_DEADLINE_MS;
  for (let rss = await rssBytes(pid); rss > target; rss = await rssBytes(pid)) {
    if (performance.now() > end)
      assert.fail(`QEMU still holds ${(rss / MIB).toFixed(0)} MiB: no free page report`);
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}
