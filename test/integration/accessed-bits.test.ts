/**
 * Real QEMU, real guest: the accessed-bit working set (docs/accessed-bits.md, ADR 0012).
 *
 * The guest fills 128 MiB and keeps rewriting 5% of it. Its first checkpoint's accessed-bit
 * estimate reads bits the guest kernel has set since boot. A restore of that checkpoint sends
 * the page-table pages the save proved with their Accessed bits cleared; the guest verifies
 * every page (the edit touched nothing else). After the guest has run its hot set a while, a
 * second save reads "accessed since the restore": a smaller set that still holds the pages
 * the restored guest then asks for, and a partial restore with it makes far fewer page
 * requests than a pure lazy one. Counts are asserted, never times.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { AgentClient } from "../../guest/index.ts";
import {
  type FillReport,
  type RestoredVm,
  type RestoreOptions,
  restore,
} from "../../src/restore/index.ts";
import { type SaveResult, save } from "../../src/save/index.ts";
import { killVm, listVms, stopVm } from "../../src/vm/index.ts";
import { ramLayout, ramPageOf } from "../../src/wss/guest-physical.ts";
import { loadWorkingSet, type WorkingSet } from "../../src/wss/index.ts";
import { bootTestGuest, connectAgent } from "../support/test-guest.ts";

const GUEST = { memoryMiB: 384, params: { memMiB: 128, hotPct: 5, hotRate: 2000 } } as const;
const FIRST = "abits@1";
const SECOND = "abits@2";
const LIMIT = { timeout: 300_000 };
/** Hot-set rewrites the restored guest does before the second save: a few passes over it. */
const REWRITE_PASSES = 3;
const POLL_MS = 200;

let home = "";
let memPages = 0;
let hotPages = 0;
/** Guest-physical frames of the workload's hot pages, as the guest's own pagemap gives them. */
let hotFrames: number[] = [];
let firstSave: SaveResult | undefined;
let secondSave: SaveResult | undefined;
let lazy: FillReport | undefined;

before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-abits-"));
  const { vm, agent } = await bootTestGuest(home, { name: "abits", ...GUEST });
  agent.close();
  firstSave = await save({ home, vm, name: FIRST, after: "stop", live: false });
});

after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
});

async function accessedBits(checkpoint: string): Promise<WorkingSet> {
  const ws = await loadWorkingSet(home, checkpoint, "accessed-bits");
  assert.ok(ws !== null, `${checkpoint} keeps an accessed-bit working set`);
  return ws;
}

async function waitRewrites(agent: AgentClient, count: number): Promise<void> {
  const start = (await agent.stats()).rewrites;
  while ((await agent.stats()).rewrites - start < count)
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
}

async function verifyAll(vm: RestoredVm): Promise<AgentClient> {
  const agent = await connectAgent(vm);
  const v = await agent.verify({ timeoutMs: 120_000 });
  assert.equal(v.bad, 0, "no page differs after the restore");
  memPages = v.pages;
  return agent;
}

test("a save keeps the accessed-bit estimate and the proven page tables", LIMIT, async () => {
  const a = firstSave?.accessedBits;
  assert.ok(a !== undefined && a !== null && a.kind === "estimated", JSON.stringify(a));
  assert.ok(a.tables > 0 && a.pages > a.tables, JSON.stringify(a));
  process.stderr.write(
    `accessed-bits: ${FIRST} (bits since boot): ${a.pages} pages, ${a.tables} tables, ` +
      `${Math.round(a.ms)} ms\n`,
  );
});

test(
  "an eager restore clears the A bits of the proven tables; the guest verifies every page",
  LIMIT,
  async () => {
    const r = await restore({ home, checkpoint: FIRST, mode: "eager", vmName: "abits" });
    const bits = r.accessedBits;
    assert.equal(bits.mismatched, 0, "every listed table page still has the walk's bytes");
    // Every listed table went out once, through the reset (all-zero tables are not listed).
    assert.ok(bits.tables > 0 && bits.cleared === bits.tables, JSON.stringify(bits));
    const agent = await verifyAll(r.vm);
    try {
      hotPages = (await agent.stats()).hotPages;
      await waitRewrites(agent, REWRITE_PASSES * hotPages);
      // A second verify after the guest ran on its edited tables: still every page right.
      assert.equal((await agent.verify({ timeoutMs: 120_000 })).bad, 0);
      hotFrames = await agent.hotFrames();
    } finally {
      agent.close();
    }
    secondSave = await save({ home, vm: "abits", name: SECOND, after: "stop", live: false });
    const a = secondSave.accessedBits;
    assert.ok(a !== null && a.kind === "estimated", JSON.stringify(a));
    const before = await accessedBits(FIRST);
    const since = await accessedBits(SECOND);
    process.stderr.write(
      `accessed-bits: ${SECOND} (bits since the restore): ${since.pages.length} pages ` +
        `(since boot: ${before.pages.length}); workload ${memPages} pages, hot ${hotPages}\n`,
    );
    // The window is clean: the cold 95% of the workload was not touched since the restore.
    assert.ok(since.pages.length < before.pages.length, "a window since the restore is smaller");
    // What the workload touched since the restore (its hot set, located by the guest itself)
    // is what the estimate must hold.
    const layout = ramLayout("pc", GUEST.memoryMiB * 2 ** 20);
    const hot = hotFrames.map((pfn) => (pfn === 0 ? null : ramPageOf(layout, pfn)));
    assert.equal(hot.length, hotPages, "the guest located every hot page");
    assert.ok(
      hot.every((page) => page !== null),
      "every hot page is mapped, in RAM",
    );
    const estimated = new Set(since.pages.map((p) => p.page));
    const held = hot.filter((page) => page !== null && estimated.has(page)).length;
    process.stderr.write(`accessed-bits: ${SECOND} holds ${held} of the ${hotPages} hot pages\n`);
    assert.ok(held >= 0.9 * hotPages, `${held} of ${hotPages} hot pages in the estimate`);
  },
);

async function restoreCounting(
  opts: Pick<RestoreOptions, "workingSet"> & { readonly mode: "lazy" | "partial" },
  vmName: string,
): Promise<FillReport> {
  const r = await restore({ home, checkpoint: SECOND, ...opts, vmName });
  let agent: AgentClient | undefined;
  try {
    // What a user's client does at once: connect and ping (its pings fault pages in).
    agent = await connectAgent(r.vm);
    for (let i = 0; i < 5; i++) await agent.ping();
    const report = await r.fill;
    assert.equal(report.pagesPlaced, report.pagesSent, "every page placed once");
    assert.equal((await agent.verify({ timeoutMs: 120_000 })).bad, 0);
    // The page server clears the proven tables' A bits too: each table page went out once,
    // cleared (asked for, prefetched or filled), and the guest still verified every page.
    const bits = report.accessedBits;
    assert.equal(bits.mismatched, 0);
    assert.ok(bits.tables > 0 && bits.cleared === bits.tables, JSON.stringify(bits));
    return report;
  } finally {
    agent?.close();
    await stopVm(home, vmName);
  }
}

test("a lazy restore of the second checkpoint: the baseline request count", LIMIT, async () => {
  assert.ok(secondSave !== undefined, "the second save ran");
  lazy = await restoreCounting({ mode: "lazy" }, "abits-lazy");
  assert.ok(lazy.lazyRequests >= 20, `${lazy.lazyRequests} pages requested`);
});

test(
  "a partial restore with the accessed-bit set asks for far fewer pages than lazy",
  LIMIT,
  async () => {
    assert.ok(lazy !== undefined, "the lazy restore ran first");
    const ws = await accessedBits(SECOND);
    // Coverage: the pages a restored copy of this guest touched and had to ask for (the lazy
    // restore's requests) are what the estimate must hold.
    const key = (p: { block: number; page: number }) => `${p.block}:${p.page}`;
    const estimate = new Set(ws.pages.map(key));
    const asked = new Set(lazy.trace.filter((r) => !r.inFlight).map(key));
    const covered = [...asked].filter((k) => estimate.has(k)).length;
    process.stderr.write(
      `accessed-bits: the estimate holds ${covered} of the ${asked.size} pages lazy asked for\n`,
    );
    assert.ok(covered >= 0.8 * asked.size, `${covered} of ${asked.size} asked pages estimated`);
    const report = await restoreCounting(
      { mode: "partial", workingSet: ws.pages },
      "abits-partial",
    );
    const figures =
      `lazy ${lazy.lazyRequests} pages requested (${lazy.requests} requests), partial ` +
      `${report.lazyRequests} (${report.requests}); prefetched ${report.pagesPrefetched} for ` +
      `an estimate of ${ws.pages.length}`;
    process.stderr.write(`accessed-bits: ${figures}\n`);
    assert.ok(report.lazyRequests * 4 <= lazy.lazyRequests, figures);
  },
);
