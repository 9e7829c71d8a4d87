/** One restore of one mode under one cache condition, timed from its invocation (restore-bench.ts). */
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
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { STORE_THROTTLE_ENV } from "../../src/checkpoint/read-throttle.ts";
import type { AgentClient } from "../../src/guest/index.ts";
import { listRestoreRecords, type RestoreSummary } from "../../src/restore/index.ts";
import { killVm, startVm } from "../../src/vm/index.ts";
import { vmPaths } from "../../src/vm/state-dir.ts";
import { testGuestSpec } from "../../test/support/test-guest.ts";
import { runCli } from "./cli.ts";
import { type FirstOutput, firstUsefulOutput } from "./first-output.ts";
import {
  type Cache,
  type Ctx,
  FILL_BUDGET_MS,
  FIRST_OUTPUT_BUDGET_MS,
  MODE_LABELS,
  type Mode,
  type ModeRun,
  RECORD_POLL_MS,
  VERIFY_TIMEOUT_MS,
} from "./restore-plan.ts";

/** The page cache emptied: dirty data written back first, then every clean page dropped. */
function dropCaches(): void {
  execFileSync("sync");
  execFileSync("sh", ["-c", "echo 3 > /proc/sys/vm/drop_caches"]);
}

const NODE = fileURLToPath(new URL("../../node_modules/.bin/node", import.meta.url));
const THROTTLED_READ = fileURLToPath(new URL("./throttled-read.ts", import.meta.url));

/** One restore of one mode under one cache condition, measured (header). */
export async function measure(ctx: Ctx, mode: Mode, cache: Cache): Promise<ModeRun> {
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
    if (record !== null && record.record.outcome !== "filled") {
      const why = record.record.error?.message ?? "no error recorded";
      throw new Error(`restore ${vmName} failed after the guest ran: ${why} (${record.file})`);
    }
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
