/**
 * `npm run bench -- restore`, one guest: the user's path, timed from the outside. The test guest
 * is booted, saved paused by `snapwake save` (a process, as a user runs it) and by QEMU's own
 * `migrate` to a file, then restored every way under each cache condition: QEMU's own
 * `-incoming defer` + `migrate-incoming exec:…` + `cont`, and `snapwake restore` (a process)
 * eager, lazy, auto, partial with the `snapwake profile`d working set, and partial with the
 * save's write set when the save recorded one. Each restore is timed from its invocation to the
 * guest's first useful output (first-output.ts); lazy and partial restores add the VEE'11
 * columns from their restore record.
 *
 * Invariants: one VM runs at a time (the guest is killed before the first restore, each restored
 * VM after its measurement); every restored guest verifies all of its pages after its fill; the
 * cold cache is dropped right before each restore is invoked, for QEMU's stream file as for the
 * checkpoint; the throttle is the same model for both (read-throttle.ts).
 */
import { execFileSync } from "node:child_process";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { STORE_THROTTLE_ENV } from "../../src/checkpoint/read-throttle.ts";
import type { AgentClient, GuestParams } from "../../src/guest/index.ts";
import { listRestoreRecords, type RestoreSummary } from "../../src/restore/index.ts";
import { killVm, openVm, startVm } from "../../src/vm/index.ts";
import { vmPaths } from "../../src/vm/state-dir.ts";
import { listSources } from "../../src/wss/index.ts";
import { bootTestGuest, testGuestSpec } from "../../test/support/test-guest.ts";
import { runCli } from "./cli.ts";
import {
  type FirstOutput,
  firstUsefulOutput,
  type TickCounter,
  watchSave,
} from "./first-output.ts";

export const CACHES = ["warm", "cold", "throttled"] as const;
export type Cache = (typeof CACHES)[number];
export const MODES = ["qemu", "eager", "lazy", "auto", "partial", "partial-ws"] as const;
export type Mode = (typeof MODES)[number];
export const MODE_LABELS: Record<Mode, string> = {
  qemu: "QEMU's own",
  eager: "snapwake eager",
  lazy: "snapwake lazy",
  auto: "snapwake auto",
  partial: "partial (profiled WS)",
  "partial-ws": "partial (write set)",
};

/** A restore that shows no useful output in 10 minutes has failed. */
const FIRST_OUTPUT_BUDGET_MS = 600_000;
/** A lazy fill that has not finished in 20 minutes has failed (4 GiB at a throttled 5 MB/s). */
const FILL_BUDGET_MS = 1_200_000;
const RECORD_POLL_MS = 100;
const VERIFY_TIMEOUT_MS = 600_000;
const SWEEP_WAIT_MS = 120_000;

export interface Throttle {
  readonly mbps: number;
  readonly latencyMs: number;
}

export interface GuestPlan {
  readonly sizeMiB: number;
  readonly workload: "hot" | "sweep";
  readonly params: GuestParams;
  readonly caches: readonly Cache[];
  readonly modes: readonly Mode[];
  readonly throttle: Throttle;
  /** Upper bound of the profile's window, s; null: the window closes once the trace settles. */
  readonly profileSeconds: number | null;
  /** "paused": both saves pause the guest first (--stop-first); "live": precopy while it runs. */
  readonly save: "paused" | "live";
}

export interface ModeRun {
  readonly mode: Mode;
  readonly label: string;
  /** What `auto` chose, or the mode itself. */
  readonly ran: string;
  /** Null when the mode could not run here (`skipped` says why). */
  readonly firstOutputMs: number | null;
  readonly firstPingMs: number | null;
  /** Restore invoked → the restore command (or QEMU's migration + cont) returned. */
  readonly commandMs: number | null;
  readonly prefetched: number | null;
  readonly lazyFaults: number | null;
  readonly pushed: number | null;
  readonly fullFillMs: number | null;
  /** The page server's own clock: its restore start → RUN handed to QEMU (lazy, partial). */
  readonly runMs: number | null;
  readonly serviceMs: { p50: number; p99: number; max: number } | null;
  readonly packMiBRead: number | null;
  readonly verifyBad: number | null;
  readonly skipped: string | null;
}

export interface CacheRun {
  readonly cache: Cache;
  readonly modes: ModeRun[];
}

export interface GuestResult {
  readonly sizeMiB: number;
  readonly workload: "hot" | "sweep";
  readonly params: GuestParams;
  readonly save: "paused" | "live";
  readonly counter: TickCounter;
  readonly bootMs: number;
  readonly saves: {
    readonly qemu: { ms: number; bytes: number; savedCounter: number; sweepPhaseMs: number };
    readonly snapwake: {
      /** `snapwake save` spawn → exit. */
      ms: number;
      bytes: number;
      streamBytes: number;
      writeSetPages: number;
      savedCounter: number;
      sweepPhaseMs: number;
    };
  };
  readonly profile: {
    ms: number;
    tracedPages: number;
    workingSetPages: number;
    prefetchPagesAfter: number | null;
  } | null;
  readonly runs: CacheRun[];
}

interface Ctx {
  readonly home: string;
  readonly workDir: string;
  readonly plan: GuestPlan;
  readonly log: (line: string) => void;
  readonly qemuFile: string;
  readonly checkpoint: string;
  readonly counter: TickCounter;
  readonly savedCounter: { qemu: number; snapwake: number };
}

export async function runRestoreGuest(o: {
  readonly home: string;
  readonly workDir: string;
  readonly plan: GuestPlan;
  readonly log: (line: string) => void;
}): Promise<GuestResult> {
  const { plan, log } = o;
  const counter: TickCounter = plan.params.sweepMs > 0 ? "sweeps" : "rewrites";
  log(
    `${plan.sizeMiB} MiB guest, ${plan.params.memMiB} MiB written, ${plan.workload} workload: ` +
      "booting and filling (TCG)…",
  );
  const bootStarted = performance.now();
  const booted = await bootTestGuest(o.home, {
    name: "g",
    memoryMiB: plan.sizeMiB,
    params: plan.params,
  });
  booted.vm.qmp.close();
  const agent = booted.agent;
  try {
    if (counter === "sweeps") {
      const s = await agent.stats();
      if (s.sweeps === 0) await waitSweeps(agent, 1);
    }
    const bootMs = performance.now() - bootStarted;
    log(`booted in ${(bootMs / 1000).toFixed(1)} s; snapwake save (${plan.save})…`);
    const checkpoint = "g@1";
    const sw = await watchSave(agent, async (w) => {
      if (counter === "sweeps") await w.nextSweep(SWEEP_WAIT_MS);
      return runCli(o.home, [
        "save",
        "g",
        "--name",
        checkpoint,
        "--after",
        "continue",
        ...(plan.save === "paused" ? ["--stop-first"] : []),
      ]);
    });
    const swJson = sw.saved.json as {
      checkpoint: { bytes: number };
      streamBytes: number;
      writeSetPages: number;
    };
    log(`QEMU's own save (${plan.save}, migrate to a file)…`);
    const qemuFile = join(o.workDir, "qemu.mig");
    const q = await watchSave(agent, async (w) => {
      if (counter === "sweeps") {
        // Pause at the same point of the sweep period as snapwake's save did.
        const at = await w.nextSweep(SWEEP_WAIT_MS);
        await sleep(Math.max(0, sw.state.sweepPhaseMs - (performance.now() - at)));
      }
      return qemuSaveToFile(o.home, "g", qemuFile, plan.save);
    });
    await killVm(o.home, "g");
    const ctx: Ctx = {
      home: o.home,
      workDir: o.workDir,
      plan,
      log,
      qemuFile,
      checkpoint,
      counter,
      savedCounter: { qemu: q.state.stats[counter], snapwake: sw.state.stats[counter] },
    };
    const runs: CacheRun[] = plan.caches.map((cache) => ({ cache, modes: [] }));
    const hasWriteSet = (await listSources(o.home, checkpoint)).includes("write-set");
    // Before profiling: the checkpoint as `save` left it (profile relays it out).
    for (const run of runs) {
      for (const mode of plan.modes) {
        if (mode === "partial") continue;
        if (mode === "partial-ws" && !hasWriteSet) {
          run.modes.push(
            skippedRun(mode, "the save recorded no write set (a paused save never does)"),
          );
          continue;
        }
        run.modes.push(await measure(ctx, mode, run.cache));
      }
    }
    let profile: GuestResult["profile"] = null;
    if (plan.modes.includes("partial")) {
      const bound = plan.profileSeconds === null ? [] : ["--seconds", String(plan.profileSeconds)];
      log(`snapwake profile ${[checkpoint, ...bound].join(" ")}…`);
      const p = await runCli(o.home, ["profile", checkpoint, ...bound]);
      const pj = p.json as {
        tracedPages: number;
        workingSetPages: number;
        prefetchPagesAfter?: number;
      };
      profile = {
        ms: p.wallMs,
        tracedPages: pj.tracedPages,
        workingSetPages: pj.workingSetPages,
        prefetchPagesAfter: pj.prefetchPagesAfter ?? null,
      };
      for (const run of runs) run.modes.push(await measure(ctx, "partial", run.cache));
    }
    for (const run of runs) run.modes.sort((a, b) => MODES.indexOf(a.mode) - MODES.indexOf(b.mode));
    return {
      sizeMiB: plan.sizeMiB,
      workload: plan.workload,
      params: plan.params,
      save: plan.save,
      counter,
      bootMs,
      saves: {
        qemu: {
          ms: q.saved.ms,
          bytes: q.saved.bytes,
          savedCounter: q.state.stats[counter],
          sweepPhaseMs: q.state.sweepPhaseMs,
        },
        snapwake: {
          ms: sw.saved.wallMs,
          bytes: swJson.checkpoint.bytes,
          streamBytes: swJson.streamBytes,
          writeSetPages: swJson.writeSetPages,
          savedCounter: sw.state.stats[counter],
          sweepPhaseMs: sw.state.sweepPhaseMs,
        },
      },
      profile,
      runs,
    };
  } finally {
    agent.close();
  }
}

async function waitSweeps(agent: AgentClient, n: number): Promise<void> {
  const end = performance.now() + SWEEP_WAIT_MS;
  while ((await agent.stats()).sweeps < n) {
    if (performance.now() > end) throw new Error("the guest's sweeper never completed a sweep");
    await sleep(20);
  }
}

/** QEMU's own save of managed VM `name` to `file`; the guest runs again afterwards. */
async function qemuSaveToFile(
  home: string,
  name: string,
  file: string,
  how: "paused" | "live",
): Promise<{ ms: number; bytes: number }> {
  const vm = await openVm(home, name);
  try {
    await vm.qmp.execute("migrate-set-parameters", { "max-bandwidth": 1_000_000_000_000 });
    const started = performance.now();
    if (how === "paused") await vm.qmp.execute("stop", {});
    await vm.qmp.execute("migrate", { uri: `exec:cat > '${file}'` });
    await vm.qmp.waitForMigration();
    const ms = performance.now() - started;
    await vm.qmp.execute("cont", {});
    return { ms, bytes: (await stat(file)).size };
  } finally {
    vm.qmp.close();
  }
}

function skippedRun(mode: Mode, why: string): ModeRun {
  return {
    mode,
    label: MODE_LABELS[mode],
    ran: mode,
    firstOutputMs: null,
    firstPingMs: null,
    commandMs: null,
    prefetched: null,
    lazyFaults: null,
    pushed: null,
    fullFillMs: null,
    runMs: null,
    serviceMs: null,
    packMiBRead: null,
    verifyBad: null,
    skipped: why,
  };
}

/** The page cache emptied: dirty data written back first, then every clean page dropped. */
function dropCaches(): void {
  execFileSync("sync");
  execFileSync("sh", ["-c", "echo 3 > /proc/sys/vm/drop_caches"]);
}

const NODE = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url));
const THROTTLED_READ = fileURLToPath(new URL("./throttled-read.ts", import.meta.url));

/** One restore of one mode under one cache condition, measured (header). */
async function measure(ctx: Ctx, mode: Mode, cache: Cache): Promise<ModeRun> {
  const { home, plan } = ctx;
  const vmName = `${mode}-${cache}`;
  const throttle = `${plan.throttle.mbps},${plan.throttle.latencyMs}`;
  ctx.log(`  ${cache}: ${MODE_LABELS[mode]}…`);
  if (cache === "cold") dropCaches();
  const startedAt = performance.now();
  const savedCounter = mode === "qemu" ? ctx.savedCounter.qemu : ctx.savedCounter.snapwake;
  const output = firstUsefulOutput(vmPaths(home, vmName).agentSocket, {
    startedAt,
    counter: ctx.counter,
    savedCounter,
    budgetMs: FIRST_OUTPUT_BUDGET_MS,
  });
  output.catch(() => undefined); // awaited below; a failed restore reports its own error first
  let commandMs: number;
  let ran: string = mode;
  let eagerPages: number | null = null;
  try {
    if (mode === "qemu") {
      const vm = await startVm(
        home,
        { ...testGuestSpec({ name: vmName, memoryMiB: plan.sizeMiB, params: plan.params }) },
        {
          incoming: "defer",
        },
      );
      const reader =
        cache === "throttled"
          ? `'${NODE}' '${THROTTLED_READ}' '${ctx.qemuFile}' '${throttle}'`
          : `cat '${ctx.qemuFile}'`;
      await vm.qmp.execute("migrate-incoming", { uri: `exec:${reader}` });
      await vm.qmp.waitForMigration();
      const status = await vm.qmp.execute("query-status", {});
      if (!status.running) await vm.qmp.execute("cont", {});
      commandMs = performance.now() - startedAt;
      vm.qmp.close();
    } else {
      const cliMode = mode === "partial-ws" ? "partial" : mode;
      const r = await runCli(
        home,
        ["restore", ctx.checkpoint, "--name", vmName, "--mode", cliMode],
        cache === "throttled" ? { env: { [STORE_THROTTLE_ENV]: throttle } } : {},
      );
      commandMs = r.wallMs;
      const j = r.json as { mode?: string; dataPages?: number; zeroPages?: number };
      ran = j.mode ?? mode;
      if (mode === "eager") eagerPages = (j.dataPages ?? 0) + (j.zeroPages ?? 0);
    }
  } catch (error) {
    await killVm(home, vmName).catch(() => undefined);
    throw error;
  }
  let first: FirstOutput;
  let agent: AgentClient;
  try {
    ({ result: first, agent } = await output);
  } catch (error) {
    await killVm(home, vmName);
    throw error;
  }
  try {
    const record =
      mode === "qemu" || mode === "eager" ? null : await waitRecord(home, ctx.checkpoint, vmName);
    const report = record?.record.report ?? null;
    if (record !== null && record.record.outcome !== "filled")
      throw new Error(
        `restore ${vmName} failed after the guest ran: ${record.record.error?.message ?? "no error recorded"} (${record.file})`,
      );
    const verify = await agent.verify({ timeoutMs: VERIFY_TIMEOUT_MS });
    return {
      mode,
      label: MODE_LABELS[mode],
      ran,
      firstOutputMs: first.firstOutputMs,
      firstPingMs: first.firstPingMs,
      commandMs,
      prefetched: report?.pagesPrefetched ?? eagerPages,
      lazyFaults: report?.lazyRequests ?? (mode === "eager" ? 0 : null),
      pushed: report?.pagesPushed ?? (mode === "eager" ? 0 : null),
      fullFillMs: report?.timeToFullFillMs ?? null,
      runMs: report?.runMs ?? null,
      serviceMs:
        report === null
          ? null
          : {
              p50: report.serviceLatency.p50Ms,
              p99: report.serviceLatency.p99Ms,
              max: report.serviceLatency.maxMs,
            },
      packMiBRead: report === null ? null : report.packBytesRead / 2 ** 20,
      verifyBad: verify.bad,
      skipped: null,
    };
  } finally {
    agent.close();
    await killVm(home, vmName);
  }
}

/** The restore record the detached page server writes for `vm` when its fill ends. */
async function waitRecord(home: string, checkpoint: string, vm: string): Promise<RestoreSummary> {
  const end = performance.now() + FILL_BUDGET_MS;
  while (performance.now() < end) {
    const { restores } = await listRestoreRecords(home, checkpoint);
    const mine = restores.find((r) => r.record.vm === vm);
    if (mine !== undefined) return mine;
    await sleep(RECORD_POLL_MS);
  }
  throw new Error(`no restore record for ${vm} after ${FILL_BUDGET_MS} ms: see ${home}/restores`);
}
