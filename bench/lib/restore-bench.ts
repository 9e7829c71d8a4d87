/**
 * `npm run bench -- restore`, one guest: the user's path, timed from the outside. The test guest
 * is booted, saved paused by `snapwake save` (a process, as a user runs it) and by QEMU's own
 * `migrate` to a file, then restored every way under each cache condition: QEMU's own
 * `-incoming defer` + `migrate-incoming exec:…` + `cont`, and `snapwake restore` (a process)
 * eager, mapped (its first restore, which builds the RAM image, then one on the kept image),
 * lazy, partial with the save's accessed-bit estimate, partial with the save's write set when
 * the save recorded one, then (after `snapwake profile`) auto and partial with the
 * profiled working set (auto is what a user who profiled gets: partial with that set).
 * Each restore is timed from its invocation to the guest's first useful output
 * (first-output.ts); lazy and partial restores add the VEE'11 columns from their restore
 * record.
 *
 * Invariants: one VM runs at a time (the guest is killed before the first restore, each restored
 * VM after its measurement); every restored guest verifies all of its pages after its fill; the
 * cold cache is dropped right before each restore is invoked, for QEMU's stream file as for the
 * checkpoint; the throttle is the same model for both (read-throttle.ts).
 */
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentClient, GuestParams } from "../../guest/index.ts";
import { killVm, openVm } from "../../src/vm/index.ts";
import { listSources } from "../../src/wss/index.ts";
import { bootTestGuest } from "../../test/support/test-guest.ts";
import { runCli } from "./cli.ts";
import { type TickCounter, watchSave } from "./first-output.ts";
import { qemuMigrateToFile } from "./qemu-baseline.ts";
import {
  type Cache,
  type MeasureContext,
  MODES,
  type Mode,
  type ModeRun,
  measure,
  skippedRun,
} from "./restore-measure.ts";

export { CACHES, type Cache, MODES, type Mode, type ModeRun } from "./restore-measure.ts";

const SWEEP_WAIT_MS = 120_000;
/** Idle time before each restore by default (--settle-seconds; ADR 0025). */
export const SETTLE_MS_DEFAULT = 10_000;
/** The modes measured once `snapwake profile` has kept its working set. */
const AFTER_PROFILE: readonly Mode[] = ["auto", "partial"];

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
  /** Idle time before each restore, so each starts from the same host memory state (ms). */
  readonly settleMs: number;
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
    readonly qemu: {
      ms: number;
      /** The guest's silence around the save, seen by its agent: the pause a user sees. */
      guestPausedMs: number;
      bytes: number;
      savedCounter: number;
      sweepPhaseMs: number;
    };
    readonly snapwake: {
      /** `snapwake save` spawn → exit. */
      ms: number;
      /** As QEMU's: the guest's silence around the save, seen by its agent. */
      guestPausedMs: number;
      /** The save's own `resumedMs`: its start → the guest running again (null: not resumed). */
      resumedMs: number | null;
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
    // A QEMU's first migration is slower than its later ones (QEMU's own save of a fresh 2 GiB
    // guest: 3.0 s, then 0.87 and 0.88 s): one unmeasured migration first, so that neither
    // measured save is a first one. Each save writes hundreds of MiB into memory the host may
    // have handed back: both start from settled memory, as every restore does (ADR 0025).
    const warmUp = join(o.workDir, "warm-up.mig");
    await qemuSaveToFile(o.home, "g", warmUp, plan.save);
    await rm(warmUp, { force: true });
    await sleep(plan.settleMs);
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
      resumedMs?: number | null;
    };
    log(`QEMU's own save (${plan.save}, migrate to a file)…`);
    await sleep(plan.settleMs);
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
    const ctx: MeasureContext = {
      home: o.home,
      plan,
      log,
      qemuFile,
      checkpoint,
      counter,
      savedCounter: { qemu: q.state.stats[counter], snapwake: sw.state.stats[counter] },
    };
    const runs: CacheRun[] = plan.caches.map((cache) => ({ cache, modes: [] }));
    const sources = await listSources(o.home, checkpoint);
    const missing: Partial<Record<Mode, string>> = {
      ...(sources.includes("write-set")
        ? {}
        : { "partial-ws": "the save recorded no write set (a paused save never does)" }),
      ...(sources.includes("accessed-bits")
        ? {}
        : { "partial-ab": "the save kept no accessed-bit working set (see its output)" }),
    };
    // Before profiling: the checkpoint as `save` left it (profile relays it out).
    for (const run of runs) {
      for (const mode of plan.modes) {
        if (AFTER_PROFILE.includes(mode)) continue;
        const why = missing[mode];
        if (why !== undefined) {
          run.modes.push(skippedRun(mode, why));
          continue;
        }
        run.modes.push(await measure(ctx, mode, run.cache));
      }
    }
    let profile: GuestResult["profile"] = null;
    if (plan.modes.some((m) => AFTER_PROFILE.includes(m))) {
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
      for (const run of runs) {
        for (const mode of AFTER_PROFILE)
          if (plan.modes.includes(mode)) run.modes.push(await measure(ctx, mode, run.cache));
      }
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
          guestPausedMs: q.state.resumedAt - q.state.pausedAfter,
          bytes: q.saved.bytes,
          savedCounter: q.state.stats[counter],
          sweepPhaseMs: q.state.sweepPhaseMs,
        },
        snapwake: {
          ms: sw.saved.wallMs,
          guestPausedMs: sw.state.resumedAt - sw.state.pausedAfter,
          resumedMs: swJson.resumedMs ?? null,
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

/** Waits until the guest's sweeper has completed `n` sweeps since boot. */
export async function waitSweeps(agent: AgentClient, n: number): Promise<void> {
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
    const ms = await qemuMigrateToFile(vm, file, how === "paused");
    await vm.qmp.execute("cont", {});
    return { ms, bytes: (await stat(file)).size };
  } finally {
    vm.qmp.close();
  }
}
