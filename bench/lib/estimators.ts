/**
 * `npm run bench -- estimators`: VEE'11's comparison of working-set estimators, on the path a
 * user runs (every step a `snapwake` process). Per guest:
 *
 *   1. boot, `save g --name g@1` (paused): its accessed bits mean "since boot";
 *   2. `restore g@1 --mode eager` as VM c: the restore clears the proven tables' A bits, so a
 *      clean window starts (docs/accessed-bits.md); c runs its workload for --run-seconds;
 *   3. `save c --name g@2` (live where the QEMU allows it, so it has a write set too): its
 *      accessed bits mean "since the restore";
 *   4. restores of g@2: lazy, partial(accessed bits), partial(write set); then `profile g@2`
 *      (the trace: every page the guest asked for until its request rate settled) and
 *      partial(trace).
 *
 * The estimator table sets each working set against that trace: pages in it, of those the
 * pages the traced guest touched (VEE'11's useful prefetch), and traced pages it lacks (what a
 * partial restore with it must fault in). The restore table is the paper's: prefetched, lazy
 * faults, time to the guest's first useful output. Invariant: one VM runs at a time.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { GuestParams } from "../../guest/index.ts";
import { killVm } from "../../src/vm/index.ts";
import { vmPaths } from "../../src/vm/state-dir.ts";
import { listSources, loadWorkingSet, type WorkingSetSource } from "../../src/wss/index.ts";
import { bootTestGuest } from "../../test/support/test-guest.ts";
import { runCli } from "./cli.ts";
import { firstUsefulOutput, type TickCounter, watchSave } from "./first-output.ts";
import { type GuestPlan, SETTLE_MS_DEFAULT, waitSweeps } from "./restore-bench.ts";
import { n, sec, table } from "./restore-format.ts";
import {
  type MeasureContext,
  type Mode,
  type ModeRun,
  measure,
  skippedRun,
} from "./restore-measure.ts";

const SWEEP_WAIT_MS = 120_000;
const FIRST_OUTPUT_BUDGET_MS = 600_000;

export interface EstimatorPlan {
  readonly sizeMiB: number;
  readonly workload: "hot" | "sweep";
  readonly params: GuestParams;
  /** How long the restored VM runs its workload between the restore and the second save, s. */
  readonly runSeconds: number;
}

export interface EstimateRow {
  /** Which estimate, and of which checkpoint's window. */
  readonly name: string;
  readonly source: WorkingSetSource;
  readonly pages: number;
  /** Pages of the set the traced guest touched. */
  readonly touched: number;
  /** Traced pages the set lacks. */
  readonly missed: number;
}

export interface EstimatorResult {
  readonly sizeMiB: number;
  readonly workload: "hot" | "sweep";
  readonly params: GuestParams;
  readonly runSeconds: number;
  /** The second save ran live (it has a write set). */
  readonly secondSaveLive: boolean;
  readonly tracedPages: number;
  readonly estimates: EstimateRow[];
  readonly restores: ModeRun[];
}

export async function runEstimatorGuest(o: {
  readonly home: string;
  readonly workDir: string;
  readonly plan: EstimatorPlan;
  readonly log: (line: string) => void;
}): Promise<EstimatorResult> {
  const { home, plan, log } = o;
  const counter: TickCounter = plan.params.sweepMs > 0 ? "sweeps" : "rewrites";
  log(`${plan.sizeMiB} MiB guest, ${plan.workload} workload: booting (TCG)…`);
  const booted = await bootTestGuest(home, {
    name: "g",
    memoryMiB: plan.sizeMiB,
    params: plan.params,
  });
  booted.vm.qmp.close();
  let agent = booted.agent;
  let saved2: { counter: number; live: boolean };
  try {
    if (counter === "sweeps") await waitSweeps(agent, 1);
    log("snapwake save g --name g@1 --stop-first (accessed bits since boot)…");
    const s1 = await watchSave(agent, (w) =>
      saveVia(home, w, counter, ["save", "g", "--name", "g@1", "--stop-first"]),
    );
    agent.close();
    await killVm(home, "g");

    log("snapwake restore g@1 --mode eager (clears the A bits) as c…");
    const startedAt = performance.now();
    await runCli(home, ["restore", "g@1", "--name", "c", "--mode", "eager"]);
    ({ agent } = await firstUsefulOutput(vmPaths(home, "c").agentSocket, {
      startedAt,
      counter,
      savedCounter: s1.state.stats[counter],
      budgetMs: FIRST_OUTPUT_BUDGET_MS,
    }));
    log(`c runs its workload for ${plan.runSeconds} s, then snapwake save c --name g@2 (live)…`);
    await sleep(plan.runSeconds * 1000);
    const s2 = await watchSave(agent, (w) =>
      saveVia(home, w, counter, ["save", "c", "--name", "g@2"]),
    );
    saved2 = { counter: s2.state.stats[counter], live: (s2.saved.json as { live: boolean }).live };
  } finally {
    agent.close();
    await killVm(home, "g").catch(() => undefined);
    await killVm(home, "c").catch(() => undefined);
  }

  const ctx: MeasureContext = {
    home,
    plan: restorePlanOf(plan),
    log,
    qemuFile: "",
    checkpoint: "g@2",
    counter,
    savedCounter: { qemu: 0, snapwake: saved2.counter },
  };
  const restores: ModeRun[] = [];
  const kept = await listSources(home, "g@2");
  const has = (source: WorkingSetSource) => kept.includes(source);
  for (const mode of ["lazy", "partial-ab", "partial-ws"] as const satisfies readonly Mode[]) {
    if (mode === "partial-ab" && !has("accessed-bits"))
      restores.push(skippedRun(mode, "the save kept no accessed-bit working set"));
    else if (mode === "partial-ws" && !has("write-set"))
      restores.push(skippedRun(mode, "the save recorded no write set (it paused the guest)"));
    else restores.push(await measure(ctx, mode, "warm"));
  }
  log("snapwake profile g@2 (the trace every estimate is set against)…");
  await runCli(home, ["profile", "g@2"]);
  restores.push(await measure(ctx, "partial", "warm"));

  const trace = await loadWorkingSet(home, "g@2", "trace");
  if (trace === null) throw new Error("profile g@2 kept no trace");
  const traced = new Set(trace.pages.map(key));
  const estimates: EstimateRow[] = [];
  const rows: [string, string, WorkingSetSource][] = [
    ["accessed bits since boot (g@1)", "g@1", "accessed-bits"],
    ["accessed bits since the restore (g@2)", "g@2", "accessed-bits"],
    ["write set of the live save (g@2)", "g@2", "write-set"],
    ["trace (profile g@2)", "g@2", "trace"],
  ];
  for (const [name, checkpoint, source] of rows) {
    const ws = await loadWorkingSet(home, checkpoint, source);
    if (ws === null) continue;
    const set = new Set(ws.pages.map(key));
    let touched = 0;
    for (const k of set) if (traced.has(k)) touched += 1;
    estimates.push({ name, source, pages: set.size, touched, missed: traced.size - touched });
  }
  return {
    sizeMiB: plan.sizeMiB,
    workload: plan.workload,
    params: plan.params,
    runSeconds: plan.runSeconds,
    secondSaveLive: saved2.live,
    tracedPages: traced.size,
    estimates,
    restores,
  };
}

const key = (p: { block: number; page: number }) => p.block * 2 ** 32 + p.page;

async function saveVia(
  home: string,
  w: { nextSweep(timeoutMs: number): Promise<number> },
  counter: TickCounter,
  args: readonly string[],
) {
  if (counter === "sweeps") await w.nextSweep(SWEEP_WAIT_MS);
  return runCli(home, [...args, "--after", "continue"]);
}

/** The restore bench's plan for `measure` (size, params, the throttle and the settle are read). */
function restorePlanOf(plan: EstimatorPlan): GuestPlan {
  return {
    sizeMiB: plan.sizeMiB,
    workload: plan.workload,
    params: plan.params,
    caches: ["warm"],
    modes: ["lazy", "partial-ab", "partial-ws", "partial"],
    throttle: { mbps: 200, latencyMs: 5 },
    profileSeconds: null,
    save: "live",
    settleMs: SETTLE_MS_DEFAULT,
  };
}

export function formatEstimators(r: EstimatorResult): string {
  const pct = (a: number, b: number) => (b === 0 ? "–" : `${((100 * a) / b).toFixed(0)}%`);
  const est = r.estimates.map((e) => [
    e.name,
    String(e.pages),
    `${e.touched} (${pct(e.touched, e.pages)} of it)`,
    `${e.missed} (${pct(e.missed, r.tracedPages)} of the trace)`,
  ]);
  const lazy = r.restores.find((m) => m.mode === "lazy");
  const res = r.restores.map((m) =>
    m.skipped !== null
      ? [m.label, "skipped", m.skipped, "", "", ""]
      : [
          m.label,
          n(m.prefetched),
          n(m.lazyFaults),
          sec(m.firstOutputMs),
          lazy?.firstOutputMs && m.firstOutputMs !== null
            ? `${(m.firstOutputMs / lazy.firstOutputMs).toFixed(2)}×`
            : "",
          n(m.verifyBad),
        ],
  );
  return [
    `${r.sizeMiB} MiB guest, ${r.params.memMiB} MiB written, ${r.workload} workload ` +
      `(${r.params.hotPct}% hot at ${r.params.hotRate} pages/s` +
      (r.params.sweepMs > 0 ? `, every page read every ${r.params.sweepMs} ms)` : ")") +
      `; restored eagerly, ran ${r.runSeconds} s, saved ${r.secondSaveLive ? "live" : "paused"}; ` +
      `trace of g@2: ${r.tracedPages} pages`,
    "",
    table([["estimate", "pages", "touched by the guest", "traced pages missing"], ...est]).replace(
      /^/gm,
      "  ",
    ),
    "",
    table([
      ["restore of g@2", "prefetched", "lazy faults", "first output", "×lazy", "bad"],
      ...res,
    ]).replace(/^/gm, "  "),
  ].join("\n");
}
