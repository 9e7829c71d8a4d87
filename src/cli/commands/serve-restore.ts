/**
 * The restores that run in this process: `restore` with --mode eager or mapped, or --wait, and
 * the hidden `__serve-restore`, the detached page server that `restore` (restore.ts) spawns
 * for a lazy or partial restore without --wait (src/restore/detached-server.ts serves it). The
 * modes, the default mode and the working-set lookup are the library's (src/restore/restore.ts).
 *
 * The server's module load is on the restore's critical path: this module imports the restore
 * entry point itself, not the restore barrel (which brings profiling and with it the save path).
 */
import { reportFailed } from "../../restore/detached.ts";
import { type ServeOptions, serveDetached } from "../../restore/detached-server.ts";
import type { EagerRestoreResult } from "../../restore/eager.ts";
import type { FillReport, PostcopyRestoreResult } from "../../restore/index.ts";
import type { MappedRestoreResult } from "../../restore/mapped.ts";
import { DEFAULT_RESTORE_MODE, RESTORE_MODES, restore } from "../../restore/restore.ts";
import type { WorkingSetSource } from "../../wss/index.ts";
import { WORKING_SET_PREFERENCE } from "../../wss/store.ts";
import type { Context } from "../context.ts";
import type { Run } from "./index.ts";
import { choice, type Parsed } from "./parse.ts";
import { humanLine } from "./restore.ts";

const MIB = 2 ** 20;

/** `restore` with --mode eager or mapped, or --wait: the whole restore in this process. */
export async function runRestoreHere(ctx: Context, p: Parsed): Promise<void> {
  const mode = choice(p.str("mode"), RESTORE_MODES, DEFAULT_RESTORE_MODE, "--mode");
  if (mode === "eager" || mode === "mapped") {
    const result = await restore({ ...restoreArgs(ctx, p), ...ramDir(ctx, p, mode), mode });
    ctx.done();
    const seconds = (result.wallMs / 1000).toFixed(2);
    const line = `restored "${p.arg(0)}" as VM "${result.vm.name}" (${mode}) in ${seconds} s`;
    const note =
      result.mode === "mapped"
        ? imageLine(result.image)
        : result.mode === "eager"
          ? guestRamLine(result)
          : null;
    ctx.result(result, note === null ? line : `${line}\n  ${note}`);
    return;
  }
  const running = await restore({ ...restoreArgs(ctx, p), ...ramDir(ctx, p, mode), mode });
  const report = await running.fill;
  ctx.done();
  ctx.result(
    { ...describeRunning(running), fill: withoutTrace(report) },
    `${humanLine(p.arg(0), describeRunning(running))}\n${humanFill(report)}`,
  );
}

/**
 * Why an eager restore streamed a pc or q35 checkpoint's RAM instead of writing it (ADR 0034),
 * or wrote it into a memfd instead of the RAM directory (ADR 0035).
 */
function guestRamLine(r: Pick<EagerRestoreResult, "guestRam" | "guestRamNote">): string | null {
  if (r.guestRamNote === null) return null;
  return r.guestRam === "stream"
    ? `its RAM went through QEMU's stream, as QEMU's own loads it: ${r.guestRamNote}`
    : r.guestRamNote;
}

/**
 * --ram-dir, else $SNAPWAKE_RAM_DIR for an eager restore (ADR 0035). Given with another mode,
 * the library refuses it; the variable is only a default, so the other modes ignore it.
 */
function ramDir(ctx: Context, p: Parsed, mode: string): { ramDir?: string } {
  const dir = p.str("ram-dir") ?? (mode === "eager" ? ctx.ramDir() : undefined);
  return dir === undefined || dir === "" ? {} : { ramDir: dir };
}

/** Hidden: the detached page server of `restore` without --wait (src/restore/detached.ts). */
export const runServeRestore: Run = async (ctx, p) => {
  let opts: ServeOptions;
  try {
    const mode = choice(p.str("mode"), RESTORE_MODES, DEFAULT_RESTORE_MODE, "--mode");
    opts = { ...restoreArgs(ctx, p), ...ramDir(ctx, p, mode), mode };
  } catch (error) {
    reportFailed(error); // the `restore` command waits for a report
    throw error;
  }
  // The QEMU `restore` starts while this process starts (src/restore/detached-restore.ts).
  const running = await serveDetached(opts);
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
    : { workingSetKind: choice(asked, WORKING_SET_PREFERENCE, "union", "--working-set") };
}

function imageLine(i: MappedRestoreResult["image"]): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  if (!i.built) return `RAM image ${i.path} checked in ${s(i.checkMs)} s`;
  const why =
    i.rebuiltBecause === null ? "" : ` (the kept one failed its check: ${i.rebuiltBecause})`;
  return `RAM image ${i.path} built in ${s(i.buildMs)} s${why}`;
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
      `(${r.requestsWaitedForChunk} waited for their chunk, ${r.requestsReadAlone} read alone); ` +
      `read ${(r.packBytesRead / MIB).toFixed(1)} MiB of chunks`,
    `  record: ${r.recordPath ?? "(none)"}`,
  ].join("\n");
}
