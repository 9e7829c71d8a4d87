/**
 * Real QEMU, real guest: the locality layout (Halite). The default test guest has a random hot
 * writer, so its traced working set is scattered over most chunks and a chunk-unit partial
 * restore's prelude fills its bound (docs/restore.md). After the profile path (learnFromTrace)
 * relays the checkpoint out by that working set, it sits in a fifth of the chunks or fewer, the
 * same partial restore prefetches less (all of it), the guest still asks for few pages, and it
 * verifies every page and file.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { baselineLatency, timeToResponsive } from "../../guest/index.ts";
import { CheckpointReader, CheckpointStore } from "../../src/checkpoint/index.ts";
import { type FillReport, learnFromTrace, restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { killVm, listVms, stopVm } from "../../src/vm/index.ts";
import { loadWorkingSet, type WorkingSetPage, workingSetFromTrace } from "../../src/wss/index.ts";
import { bootTestGuest } from "../support/test-guest.ts";

/** The default test guest (hot writer on) with a 160 MiB workload. */
const GUEST = { memoryMiB: 384, params: { memMiB: 160 } } as const;
const CHECKPOINT = "loc-a@1";
/**
 * The profiling restore is pure demand paging for this long (a fixed trace window: nothing
 * unasked is placed), so its trace holds every page the guest touched in it.
 */
const PROFILE_MS = 3_000;
const LIMIT = { timeout: 600_000 };

let home = "";
let baselineMs = 1;

before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-locality-"));
  const { vm, agent } = await bootTestGuest(home, { name: "loc-a", ...GUEST });
  baselineMs = await baselineLatency(agent);
  agent.close();
  // Not live: this test is about the layout, not the save. (A live save of this hot writer is
  // safe now: QEMU 10.0, the reference, tracks TCG writes right, and on 7.2 a save pauses the
  // guest anyway: docs/qemu-versions.md, ADR 0011.)
  await save({ home, vm, name: CHECKPOINT, after: "pause", live: false });
  await killVm(home, vm);
});

after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
});

interface Partial {
  readonly report: FillReport;
  readonly ttrMs: number;
}

/** A partial restore with `workingSet`: TTR, then the fill, then the guest verifies itself. */
async function partial(vmName: string, workingSet: readonly WorkingSetPage[]): Promise<Partial> {
  const startedAt = performance.now();
  const r = await restore({ home, checkpoint: CHECKPOINT, mode: "partial", workingSet, vmName });
  assert.equal(r.mode, "partial");
  assert.ok(r.vm.agentSocket !== null);
  const ttr = await timeToResponsive(r.vm.agentSocket, {
    startedAt,
    baselineMs,
    budgetMs: 120_000,
  });
  try {
    const report = await r.fill;
    assert.equal(report.pagesPlaced, report.pagesSent, "every page placed once");
    const verify = await ttr.agent.verify({ timeoutMs: 120_000 });
    assert.equal(verify.bad, 0, "no page differs after the restore");
    assert.equal(verify.pages, GUEST.params.memMiB * 256);
    const files = await ttr.agent.files({ timeoutMs: 120_000 });
    assert.equal(files.bad, 0, "every cached data file still checksums");
    return { report, ttrMs: ttr.ttrMs };
  } finally {
    ttr.agent.close();
    await stopVm(home, vmName);
  }
}

test(
  "a relayout packs the traced working set into a fifth of the chunks; partial prefetches less",
  LIMIT,
  async () => {
    const prof = await restore({
      home,
      checkpoint: CHECKPOINT,
      mode: "lazy",
      vmName: "loc-prof",
      traceWindow: { maxMs: PROFILE_MS, fixed: true },
    });
    const traced = await prof.fill;
    await stopVm(home, "loc-prof");
    const workingSet = workingSetFromTrace(traced.trace.filter((t) => t.tMs <= PROFILE_MS)).pages;
    assert.ok(workingSet.length > 0);

    const old = await partial("loc-before", workingSet);
    const learned = await learnFromTrace(home, CHECKPOINT, traced, PROFILE_MS);
    const kept = await loadWorkingSet(home, CHECKPOINT);
    assert.ok(kept !== null, "the working set is kept");
    assert.ok(existsSync(learned.file), `the reported file ${learned.file} is where it is now`);
    const now = await partial("loc-after", kept.pages);

    const r = learned.relayout;
    const figures =
      `working set ${workingSet.length} pages; prefetched ${old.report.pagesPrefetched} → ` +
      `${now.report.pagesPrefetched}; chunks ${r.chunksBefore} → ${r.chunksAfter}; lazy ` +
      `requests ${old.report.lazyRequests} → ${now.report.lazyRequests}; TTR ` +
      `${Math.round(old.ttrMs)} → ${Math.round(now.ttrMs)} ms; relayout ${r.ms} ms`;
    process.stderr.write(`locality: ${figures}\n`);
    assert.ok(r.chunksAfter * 5 <= r.chunksBefore, figures);
    // Before, the working set's chunks hold more pages than the bounded prelude takes
    // (docs/restore.md, "A bounded prelude"); after, all of it fits in fewer.
    assert.ok(now.report.pagesPrefetched < old.report.pagesPrefetched, figures);
    assert.ok(now.report.pagesPrefetched >= r.workingSetPages, figures);
    assert.ok(now.report.lazyRequests <= Math.max(200, traced.lazyRequests), figures);

    const reader = await CheckpointReader.open(new CheckpointStore({ home }), CHECKPOINT);
    try {
      assert.equal(reader.manifest.layout?.kind, "access-order");
      await reader.verify();
    } finally {
      await reader.close();
    }
  },
);
