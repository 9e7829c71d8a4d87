/**
 * The restores that run in this process: `restore` with --mode eager or --wait, and the hidden
 * `__serve-restore`, the detached page server that `restore` (restore.ts) spawns for a lazy or
 * partial restore without --wait (src/restore/detached.ts owns the spawn and its report line).
 * The default mode and the working-set lookup are the library's (src/restore/restore.ts).
 *
 * The server's module load is on the restore's critical path: this module imports the restore
 * entry point itself, not the restore barrel (which brings profiling and with it the save path).
 */
import { UsageError } from "../../errors.ts";
import { readHandoff, reportFailed, reportRunning } from "../../restore/detached.ts";
import type { FillReport, PostcopyRestoreResult } from "../../restore/index.ts";
import { DEFAULT_RESTORE_MODE, restore } from "../../restore/restore.ts";
import { parseHandoff } from "../../restore/target.ts";
import type { WorkingSetSource } from "../../wss/index.ts";
import type { Context } from "../context.ts";
import type { Run } from "./index.ts";
import { choice, type Parsed } from "./parse.ts";
import { humanLine } from "./restore.ts";

const MIB = 2 ** 20;
const MODES = ["eager", "lazy", "partial", "auto"] as const;
const KINDS = [
  "union",
  "trace",
  "accessed-bits",
  "write-set",
] as const satisfies readonly WorkingSetSource[];

/** `restore` with --mode eager or --wait: the whole restore in this process. */
export async function runRestoreHere(ctx: Context, p: Parsed): Promise<void> {
  const mode = choice(p.str("mode"), MODES, DEFAULT_RESTORE_MODE, "--mode");
  if (mode === "eager") {
    const result = await restore({ ...restoreArgs(ctx, p), mode });
    ctx.done();
    const seconds = (result.wallMs / 1000).toFixed(2);
    ctx.result(result, `restored "${p.arg(0)}" as VM "${result.vm.name}" (eager) in ${seconds} s`);
    return;
  }
  const running = await restore({ ...restoreArgs(ctx, p), mode });
  const report = await running.fill;
  ctx.done();
  ctx.result(
    { ...describeRunning(running), fill: withoutTrace(report) },
    `${humanLine(p.arg(0), describeRunning(running))}\n${humanFill(report)}`,
  );
}

/** Hidden: the detached page server of `restore` without --wait (src/restore/detached.ts). */
export const runServeRestore: Run = async (ctx, p) => {
  let running: PostcopyRestoreResult;
  try {
    const mode = choice(p.str("mode"), MODES, DEFAULT_RESTORE_MODE, "--mode");
    if (mode === "eager") throw new UsageError("__serve-restore serves lazy restores only");
    // The QEMU `restore` starts while this process starts (src/restore/launch.ts).
    const launched = readHandoff().then(parseHandoff);
    launched.catch(() => undefined); // unread when the restore fails before it attaches
    running = await restore({ ...restoreArgs(ctx, p), mode, launched });
  } catch (error) {
    reportFailed(error);
    throw error;
  }
  reportRunning({ ...describeRunning(running), server: process.pid });
  const fill = await running.fill; // a failure is thrown: the log gets it, the record has it
  process.stderr.write(`${humanFill(fill)}\n`);
};

function restoreArgs(ctx: Context, p: Parsed) {
  const vmName = p.str("name");
  const qemu = ctx.qemu();
  return {
    home: ctx.home,
    checkpoint: p.arg(0),
    ...(vmName === undefined ? {} : { vmName }),
    ...(qemu === undefined ? {} : { qemu }),
    ...workingSetKind(p),
    resetAccessedBits: !p.flag("keep-accessed-bits"),
    onProgress: ctx.progress.bind(ctx),
    signal: ctx.signal,
  };
}

/** --working-set KIND: which stored estimate partial and auto prefetch (the library checks). */
function workingSetKind(p: Parsed): { workingSetKind?: WorkingSetSource } {
  const asked = p.str("working-set");
  return asked === undefined
    ? {}
    : { workingSetKind: choice(asked, KINDS, "union", "--working-set") };
}

function describeRunning(r: PostcopyRestoreResult) {
  return { vm: r.vm.name, mode: r.mode, wallMs: r.wallMs, pagesPrefetched: r.pagesPrefetched };
}
function withoutTrace(r: FillReport) {
  const { trace, ...rest } = r;
  return { ...rest, traceRequests: trace.length };
}

function humanFill(r: FillReport): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  return [
    `filled in ${s(r.timeToFullFillMs)} s (completed ${s(r.timeToCompletedMs)} s): ` +
      `${r.lazyRequests} pages requested, ${r.pagesPushed} pushed, ${r.pagesPrefetched} prefetched`,
    `  request service p50 ${r.serviceLatency.p50Ms.toFixed(2)} ms, ` +
      `p99 ${r.serviceLatency.p99Ms.toFixed(2)} ms, max ${r.serviceLatency.maxMs.toFixed(2)} ms ` +
      `(${r.requestsWaitedForChunk} waited for their chunk); ` +
      `read ${(r.packBytesRead / MIB).toFixed(1)} MiB of chunks`,
    `  record: ${r.recordPath ?? "(none)"}`,
  ].join("\n");
}
