/**
 * One restore of one mode under one cache condition, measured from the outside (the bench's
 * header in restore-bench.ts; the definition of first useful output in first-output.ts). The
 * cold cache is dropped right before the restore is invoked; the throttled store is the same
 * model for snapwake (SNAPWAKE_STORE_THROTTLE) and QEMU's own (throttled-read.ts as its reader).
 *
 * Invariant: the restored VM is killed before `measure` returns or throws.
 */
import { execFileSync } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { AgentClient } from "../../guest/index.ts";
import { STORE_THROTTLE_ENV } from "../../src/checkpoint/read/read-throttle.ts";
import { listRestoreRecords, type RestoreSummary } from "../../src/restore/index.ts";
import { removeImage } from "../../src/restore/ram-image.ts";
import { killVm, startVm } from "../../src/vm/index.ts";
import { vmPaths } from "../../src/vm/state-dir.ts";
import type { WorkingSetSource } from "../../src/wss/index.ts";
import { testGuestSpec } from "../../test/support/test-guest.ts";
import { runCli } from "./cli.ts";
import { type FirstOutput, firstUsefulOutput, type TickCounter } from "./first-output.ts";
import type { GuestPlan } from "./restore-bench.ts";

export const CACHES = ["warm", "cold", "throttled"] as const;
export type Cache = (typeof CACHES)[number];
export const MODES = [
  "qemu",
  "eager",
  "eager-ramdir",
  "mapped-build",
  "mapped",
  "lazy",
  "auto",
  "partial",
  "partial-ab",
  "partial-ws",
] as const;
export type Mode = (typeof MODES)[number];
export const MODE_LABELS: Record<Mode, string> = {
  qemu: "QEMU's own",
  eager: "snapwake eager",
  "eager-ramdir": "eager, RAM dir",
  "mapped-build": "mapped (builds image)",
  mapped: "mapped (kept image)",
  lazy: "snapwake lazy",
  auto: "auto (profiled)",
  partial: "partial (profiled WS)",
  "partial-ab": "partial (accessed bits)",
  "partial-ws": "partial (write set)",
};

/** The working-set kind each partial mode prefetches (`restore --working-set`). */
export const PARTIAL_KINDS = {
  partial: "trace",
  "partial-ab": "accessed-bits",
  "partial-ws": "write-set",
} as const satisfies Partial<Record<Mode, WorkingSetSource>>;

function isPartial(mode: Mode): mode is keyof typeof PARTIAL_KINDS {
  return mode in PARTIAL_KINDS;
}

/** A restore that shows no useful output in 10 minutes has failed. */
const FIRST_OUTPUT_BUDGET_MS = 600_000;
/** A lazy fill that has not finished in 20 minutes has failed (4 GiB at a throttled 5 MB/s). */
const FILL_BUDGET_MS = 1_200_000;
const RECORD_POLL_MS = 100;
const VERIFY_TIMEOUT_MS = 600_000;

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

/** What every measurement of one guest shares. */
export interface MeasureContext {
  readonly home: string;
  readonly plan: GuestPlan;
  readonly log: (line: string) => void;
  readonly qemuFile: string;
  readonly checkpoint: string;
  readonly counter: TickCounter;
  readonly savedCounter: { qemu: number; snapwake: number };
}

export function skippedRun(mode: Mode, why: string): ModeRun {
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
export async function measure(ctx: MeasureContext, mode: Mode, cache: Cache): Promise<ModeRun> {
  if (mode !== "eager-ramdir") return measureIn(ctx, mode, cache, null);
  // A tmpfs with huge pages for this restore alone (ADR 0035), unmounted once its VM is gone.
  const ramDir = join(ctx.home, "ram-dir");
  await mkdir(ramDir, { recursive: true });
  const sizeMiB = ctx.plan.sizeMiB + RAM_DIR_MARGIN_MIB;
  try {
    execFileSync(
      "mount",
      ["-t", "tmpfs", "-o", `huge=within_size,size=${sizeMiB}m`, "none", ramDir],
      {
        stdio: "pipe",
      },
    );
  } catch (error) {
    const why = error instanceof Error ? error.message.split("\n")[0] : String(error);
    return skippedRun(mode, `cannot mount a tmpfs with huge pages (needs root): ${why}`);
  }
  try {
    return await measureIn(ctx, mode, cache, ramDir);
  } finally {
    execFileSync("umount", [ramDir]);
  }
}

/** Room in the bench's RAM directory beyond the guest's RAM. */
const RAM_DIR_MARGIN_MIB = 64;

async function measureIn(
  ctx: MeasureContext,
  mode: Mode,
  cache: Cache,
  ramDir: string | null,
): Promise<ModeRun> {
  const { home, plan } = ctx;
  const vmName = `${mode}-${cache}`;
  const throttle = `${plan.throttle.mbps},${plan.throttle.latencyMs}`;
  ctx.log(`  ${cache}: ${MODE_LABELS[mode]}…`);
  // The first mapped restore of a checkpoint builds its image; "mapped" uses the one kept.
  if (mode === "mapped-build") await removeImage(home, ctx.checkpoint);
  if (cache === "cold") dropCaches();
  // After the cache drop: the memory it freed settles too (GuestPlan.settleMs).
  await sleep(plan.settleMs);
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
      const how = isPartial(mode)
        ? ["--mode", "partial", "--working-set", PARTIAL_KINDS[mode]]
        : ramDir !== null
          ? ["--mode", "eager", "--ram-dir", ramDir]
          : ["--mode", mode === "mapped-build" ? "mapped" : mode];
      const r = await runCli(
        home,
        ["restore", ctx.checkpoint, "--name", vmName, ...how],
        cache === "throttled" ? { env: { [STORE_THROTTLE_ENV]: throttle } } : {},
      );
      commandMs = r.wallMs;
      const j = r.json as {
        mode?: string;
        dataPages?: number;
        zeroPages?: number;
        image?: { built: boolean };
        guestRam?: string;
      };
      ran = j.mode ?? mode;
      if (ran === "eager") eagerPages = (j.dataPages ?? 0) + (j.zeroPages ?? 0);
      // Where its RAM went, when not where asked (ADR 0034, 0035): a memfd, or the stream.
      if (ran === "eager" && j.guestRam !== (ramDir === null ? "memfd" : "ram-dir"))
        ran = `eager, ${j.guestRam}`;
      if (ran === "mapped" && j.image?.built === true) ran = "mapped, image built";
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
    const unserved = ran === "qemu" || ran.startsWith("eager") || ran.startsWith("mapped");
    const record = unserved ? null : await waitRecord(home, ctx.checkpoint, vmName);
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
      lazyFaults: report?.lazyRequests ?? (unserved ? 0 : null),
      pushed: report?.pagesPushed ?? (unserved ? 0 : null),
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
