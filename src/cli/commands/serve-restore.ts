/**
 * The restores that run in this process: `restore` with --mode eager or --wait, and the hidden
 * `__serve-restore`, the detached page server that `restore` (restore.ts) spawns for a lazy or
 * partial restore without --wait. The server reports "running" (or why not) as one JSON line on
 * fd 3 and keeps serving until the fill is done; its stdout and stderr are its log.
 *
 * The server's module load is on the restore's critical path: this module imports the restore
 * entry point itself, not the restore barrel (which brings profiling and with it the save path).
 */
import { closeSync, writeSync } from "node:fs";
import { InvalidCheckpointError, UsageError } from "../../errors.ts";
import type { FillReport, PostcopyRestoreResult, RestoreMode } from "../../restore/index.ts";
import { restore } from "../../restore/restore.ts";
import { loadWorkingSet } from "../../wss/index.ts";
import type { Context } from "../context.ts";
import type { Run } from "./index.ts";
import { choice, type Parsed } from "./parse.ts";
import { type FailedLine, humanLine, REPORT_FD, type RunningLine } from "./restore.ts";

const MIB = 2 ** 20;
const MODES = ["eager", "lazy", "partial", "auto"] as const;

/** `restore` with --mode eager or --wait: the whole restore in this process. */
export async function runRestoreHere(ctx: Context, p: Parsed): Promise<void> {
  const mode = choice(p.str("mode"), MODES, "auto", "--mode");
  if (mode === "eager") {
    const result = await restore({ ...restoreArgs(ctx, p), mode });
    ctx.done();
    const seconds = (result.wallMs / 1000).toFixed(2);
    ctx.result(result, `restored "${p.arg(0)}" as VM "${result.vm.name}" (eager) in ${seconds} s`);
    return;
  }
  const running = await restorePostcopy(ctx, p, mode);
  const report = await running.fill;
  ctx.done();
  ctx.result(
    { ...describeRunning(running), fill: withoutTrace(report) },
    `${humanLine(p.arg(0), describeRunning(running))}\n${humanFill(report)}`,
  );
}

/** Hidden: the detached page server of `restore` without --wait. */
export const runServeRestore: Run = async (ctx, p) => {
  const mode = choice(p.str("mode"), MODES, "auto", "--mode");
  let running: PostcopyRestoreResult;
  try {
    if (mode === "eager") throw new UsageError("__serve-restore serves lazy restores only");
    running = await restorePostcopy(ctx, p, mode);
  } catch (error) {
    report({ state: "failed", error: describeError(error) });
    throw error;
  }
  report({ state: "running", ...describeRunning(running), server: process.pid });
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
    onProgress: ctx.progress.bind(ctx),
  };
}

/** Lazy, partial or auto, with the checkpoint's stored working set where one is wanted. */
async function restorePostcopy(
  ctx: Context,
  p: Parsed,
  mode: Exclude<RestoreMode, "eager">,
): Promise<PostcopyRestoreResult> {
  const base = restoreArgs(ctx, p);
  if (mode === "lazy") return restore({ ...base, mode });
  const ws = await loadWorkingSet(ctx.home, p.arg(0));
  if (ws === null && mode === "partial") {
    throw new UsageError(
      `Checkpoint "${p.arg(0)}" has no working set to prefetch: profile it, or use --mode lazy`,
    );
  }
  return restore({ ...base, mode, ...(ws === null ? {} : { workingSet: ws.pages }) });
}

function describeRunning(r: PostcopyRestoreResult) {
  return { vm: r.vm.name, mode: r.mode, wallMs: r.wallMs, pagesPrefetched: r.pagesPrefetched };
}

function report(line: Omit<RunningLine, "log"> | FailedLine): void {
  writeSync(REPORT_FD, `${JSON.stringify(line)}\n`);
  closeSync(REPORT_FD);
}

function describeError(error: unknown): FailedLine["error"] {
  if (error instanceof InvalidCheckpointError)
    return { name: error.name, message: error.reason, checkpoint: error.checkpoint };
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: "Error", message: String(error) };
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
