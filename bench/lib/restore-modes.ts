/**
 * `npm run bench -- restore`: one booted guest, one checkpoint, restored every way side by side:
 * QEMU's own -incoming, snapwake eager, lazy, partial with the traced working set, partial with
 * the write set. Per mode: TTR (src/guest/responsiveness.ts), restore overhead (a fixed guest
 * task after the restore minus the same task undisturbed), and the VEE'11 table.
 */
import { join } from "node:path";
import { type AgentClient, baselineLatency, timeToResponsive } from "../../src/guest/index.ts";
import { type FillReport, profile, restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { killVm, stopVm } from "../../src/vm/index.ts";
import { loadWorkingSet } from "../../src/wss/index.ts";
import { bootTestGuest, connectAgent, testGuestSpec } from "../../test/support/test-guest.ts";
import { qemuRestore, qemuSave } from "./qemu-baseline.ts";

const TTR_BUDGET_MS = 300_000;
const TASK_TIMEOUT_MS = 600_000;

export interface RestoreBenchOptions {
  readonly home: string;
  readonly workDir: string;
  readonly memoryMiB: number;
  readonly params: { memMiB: number; hotPct: number; hotRate: number };
  /** Bound of the profiling window, seconds (default: profile's); it closes when it settles. */
  readonly traceSeconds?: number;
  /** The fixed task's `work` burst, MiB (plus a full `verify`). */
  readonly workMiB: number;
  readonly log: (line: string) => void;
}

export interface ModeResult {
  readonly mode: string;
  readonly ttrMs: number;
  readonly firstPingMs: number;
  readonly taskMs: number;
  readonly overheadMs: number;
  readonly verifyBad: number;
  readonly prefetched: number | null;
  readonly lazyRequests: number | null;
  readonly pushed: number | null;
  readonly fullFillMs: number | null;
  readonly p99ServiceMs: number | null;
  /**
   * Working-set pages among the distinct pages the pure lazy restore's guest requested in its
   * profiling window: the VEE'11 table's "accesses that hit prefetched pages".
   */
  readonly workingSetHits: number | null;
}

export interface RestoreBenchResult {
  readonly memoryMiB: number;
  readonly params: RestoreBenchOptions["params"];
  readonly baselinePingMs: number;
  readonly undisturbedTaskMs: number;
  readonly workingSets: { trace: number; writeSet: number };
  readonly modes: readonly ModeResult[];
}

export async function runRestoreBench(o: RestoreBenchOptions): Promise<RestoreBenchResult> {
  const spec = (name: string) => testGuestSpec({ name, memoryMiB: o.memoryMiB, params: o.params });
  o.log(
    `booting a ${o.memoryMiB} MiB guest (workload ${o.params.memMiB} MiB, ${o.params.hotPct}% hot)…`,
  );
  const { vm, agent } = await bootTestGuest(o.home, {
    name: "rb",
    memoryMiB: o.memoryMiB,
    params: o.params,
  });
  const baselinePingMs = await baselineLatency(agent);
  const undisturbedTaskMs = await task(agent, o.workMiB);
  agent.close();
  const file = join(o.workDir, "qemu.mig");
  await qemuSave(vm, file);
  await save({ home: o.home, vm, name: "rb@1", after: "pause" });
  await killVm(o.home, vm);

  const measure = async (
    mode: string,
    start: () => Promise<{ agentSocket: string | null; name: string; fill?: Promise<FillReport> }>,
  ) => {
    o.log(`restoring: ${mode}…`);
    const startedAt = performance.now();
    const restored = await start();
    const ttr = await timeToResponsive(restored.agentSocket ?? "", {
      startedAt,
      baselineMs: baselinePingMs,
      budgetMs: TTR_BUDGET_MS,
    });
    const t0 = performance.now();
    const verify = await ttr.agent.verify({ timeoutMs: TASK_TIMEOUT_MS });
    await ttr.agent.work(o.workMiB, { timeoutMs: TASK_TIMEOUT_MS });
    const taskMs = performance.now() - t0;
    ttr.agent.close();
    const fill = restored.fill === undefined ? null : await restored.fill;
    await stopVm(o.home, restored.name);
    const result: ModeResult & { trace: FillReport["trace"] } = {
      trace: fill?.trace ?? [],
      workingSetHits: null,
      mode,
      ttrMs: ttr.ttrMs,
      firstPingMs: ttr.firstPingMs,
      taskMs,
      overheadMs: taskMs - undisturbedTaskMs,
      verifyBad: verify.bad,
      prefetched: fill?.pagesPrefetched ?? null,
      lazyRequests: fill?.lazyRequests ?? null,
      pushed: fill?.pagesPushed ?? null,
      fullFillMs: fill?.timeToFullFillMs ?? null,
      p99ServiceMs: fill?.serviceLatency.p99Ms ?? null,
    };
    return result;
  };

  const modes: ModeResult[] = [];
  modes.push(
    await measure("QEMU -incoming", async () => {
      const r = await qemuRestore(o.home, spec("rb-q"), file);
      r.vm.qmp.close();
      return { agentSocket: r.vm.agentSocket, name: r.vm.name };
    }),
  );
  modes.push(
    await measure("snapwake eager", async () => {
      const r = await restore({ home: o.home, checkpoint: "rb@1", vmName: "rb-e" });
      return { agentSocket: r.vm.agentSocket, name: r.vm.name };
    }),
  );
  // Pure lazy first: profiling rewrites the checkpoint with its working set packed first,
  // after which a lazy restore's background pushes that working set first too.
  const { trace: lazyTrace, ...lazy } = await measure("snapwake lazy", async () => {
    const r = await restore({ home: o.home, checkpoint: "rb@1", mode: "lazy", vmName: "rb-l" });
    return { agentSocket: r.vm.agentSocket, name: r.vm.name, fill: r.fill };
  });
  modes.push(lazy);

  o.log("profiling: a demand-paged lazy restore until its trace settles…");
  const profiled = await profile({
    home: o.home,
    checkpoint: "rb@1",
    ...(o.traceSeconds === undefined ? {} : { seconds: o.traceSeconds }),
    drive: pingClone, // what every measured restore gets first
  });
  const windowMs = profiled.window?.closedAtMs ?? Number.POSITIVE_INFINITY;
  o.log(`profiled: ${profiled.tracedPages} pages in a ${(windowMs / 1000).toFixed(1)} s window`);
  const trace = (await loadWorkingSet(o.home, "rb@1", "trace"))?.pages ?? [];
  const writeSet = (await loadWorkingSet(o.home, "rb@1", "write-set"))?.pages ?? [];
  const lazyAccessed = new Set(
    lazyTrace.filter((t) => t.tMs <= windowMs).map((t) => `${t.block}:${t.page}`),
  );
  for (const [mode, ws] of [
    ["partial (trace)", trace],
    ["partial (write set)", writeSet],
  ] as const) {
    const { trace: _, ...measured } = await measure(mode, async () => {
      const r = await restore({
        home: o.home,
        checkpoint: "rb@1",
        mode: "partial",
        vmName: "rb-p",
        workingSet: ws,
      });
      return { agentSocket: r.vm.agentSocket, name: r.vm.name, fill: r.fill };
    });
    const hits = ws.filter((p) => lazyAccessed.has(`${p.block}:${p.page}`)).length;
    modes.push({ ...measured, workingSetHits: hits });
  }
  return {
    memoryMiB: o.memoryMiB,
    params: o.params,
    baselinePingMs,
    undisturbedTaskMs,
    workingSets: { trace: trace.length, writeSet: writeSet.length },
    modes,
  };
}

/** The profiling clone's client: it connects and pings at once, as TTR does after a restore. */
async function pingClone(vm: { agentSocket: string | null }): Promise<void> {
  const agent = await connectAgent(vm);
  try {
    for (let i = 0; i < 5; i++) await agent.ping();
  } finally {
    agent.close();
  }
}

/** The fixed guest task of "restore overhead": verify all memory, then a work burst. */
async function task(agent: AgentClient, workMiB: number): Promise<number> {
  const t0 = performance.now();
  await agent.verify({ timeoutMs: TASK_TIMEOUT_MS });
  await agent.work(workMiB, { timeoutMs: TASK_TIMEOUT_MS });
  return performance.now() - t0;
}

/** The side-by-side table, ratios against snapwake eager. */
export function formatRestoreBench(r: RestoreBenchResult): string {
  const eager = r.modes.find((m) => m.mode === "snapwake eager");
  // Eager's overhead is ~0 (all memory is in before the task starts), so overhead is compared
  // with pure lazy restore's: Halite's "reduction of restore overhead".
  const lazy = r.modes.find((m) => m.mode === "snapwake lazy");
  const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const ratio = (a: number, b: number | undefined) =>
    b === undefined || b <= 0 ? "" : `${(a / b).toFixed(2)}×`;
  const n = (v: number | null) => (v === null ? "–" : String(v));
  const header = [
    "mode",
    "TTR",
    "TTR/eager",
    "overhead",
    "ovh/lazy",
    "prefetched",
    "lazy faults",
    "pushed",
    "full fill",
    "p99 req",
    "WS hits",
  ];
  const rows = r.modes.map((m) => [
    m.mode,
    sec(m.ttrMs),
    ratio(m.ttrMs, eager?.ttrMs),
    sec(m.overheadMs),
    m.overheadMs > 0 ? ratio(m.overheadMs, lazy?.overheadMs) : "",
    n(m.prefetched),
    n(m.lazyRequests),
    n(m.pushed),
    m.fullFillMs === null ? "–" : sec(m.fullFillMs),
    m.p99ServiceMs === null ? "–" : `${m.p99ServiceMs.toFixed(2)} ms`,
    n(m.workingSetHits),
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]?.length ?? 0)));
  const lines = all.map((row) => row.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  "));
  const bad = r.modes.filter((m) => m.verifyBad !== 0).map((m) => m.mode);
  lines.push(
    "",
    `guest ${r.memoryMiB} MiB, workload ${r.params.memMiB} MiB (${r.params.hotPct}% hot); baseline ping ` +
      `${r.baselinePingMs.toFixed(2)} ms; undisturbed task ${sec(r.undisturbedTaskMs)}; working sets: traced ` +
      `${r.workingSets.trace} pages, write set ${r.workingSets.writeSet} pages`,
    bad.length === 0
      ? "every restored guest verified all its pages: 0 bad"
      : `BAD PAGES in: ${bad.join(", ")}`,
  );
  return lines.join("\n");
}
