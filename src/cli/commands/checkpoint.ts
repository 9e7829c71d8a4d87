/**
 * `snapwake save` and `snapwake restore`. A lazy or partial restore's page server must outlive
 * `restore` (the guest needs it until every page is in): without --wait, restore spawns itself
 * detached as the hidden `__serve-restore`, which reports "running" as one JSON line on fd 3
 * and keeps serving until the fill is done; the parent prints that line's content and exits.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { InvalidCheckpointError, NotFoundError, QemuError, UsageError } from "../../errors.ts";
import {
  type FillReport,
  type PostcopyRestoreResult,
  type RestoreMode,
  restore,
  restoresDir,
} from "../../restore/index.ts";
import { save } from "../../save/index.ts";
import { loadWorkingSet } from "../../wss/index.ts";
import type { Context } from "../context.ts";
import type { Command } from "./index.ts";
import { choice, type Parsed, parse } from "./parse.ts";
import { saveContinue } from "./profile.ts";

const MIB = 2 ** 20;
const MODES = ["eager", "lazy", "partial", "auto"] as const;
/** The child's report channel: fd 3 of the spawned `__serve-restore`. */
const REPORT_FD = 3;

export const saveCommand: Command = {
  usage:
    "VM --name CHECKPOINT [--parent CHECKPOINT | --full] [--share-store] [--stop-first] " +
    "[--after continue|pause|stop | --continue [--seconds N]]   checkpoint a running managed VM " +
    "(incremental from the checkpoint it was restored from or last saved to, unless --full; " +
    "--share-store: also share identical pages with every checkpoint in the store; " +
    "--continue: it goes on as a traced lazy restore of the checkpoint)",
  async run(ctx, args) {
    const p = parse(
      args,
      {
        name: { type: "string" },
        after: { type: "string" },
        continue: { type: "boolean" },
        seconds: { type: "string" },
        "stop-first": { type: "boolean" },
        parent: { type: "string" },
        full: { type: "boolean" },
        "share-store": { type: "boolean" },
      },
      ["vm"],
    );
    const vm = p.arg(0);
    if (p.flag("full") && p.str("parent") !== undefined)
      throw new UsageError("--parent and --full exclude each other");
    const parent = {
      ...(p.flag("full") ? { parent: null } : parentOption(p.str("parent"))),
      wholeStore: p.flag("share-store"),
    };
    const name =
      p.str("name") ?? `${vm}@${new Date().toISOString().replace(/[:]/g, "-").slice(0, 19)}`;
    if (p.flag("continue")) {
      if (p.str("after") !== undefined)
        throw new UsageError("--continue and --after exclude each other");
      await saveContinue(ctx, p, vm, name, parent);
      return;
    }
    const after = choice(
      p.str("after"),
      ["continue", "pause", "stop"] as const,
      "continue",
      "after",
    );
    const result = await save({
      home: ctx.home,
      vm,
      name,
      after,
      live: !p.flag("stop-first"),
      ...parent,
      onProgress: (x) => ctx.progress(x),
    });
    ctx.done();
    const c = result.checkpoint;
    const human = [
      `saved "${c.name}" from VM "${vm}" in ${(result.wallMs / 1000).toFixed(2)} s`,
      `  stream ${(result.streamBytes / MIB).toFixed(1)} MiB from QEMU → ` +
        `checkpoint ${(c.bytes / MIB).toFixed(1)} MiB` +
        (result.parent === null ? " (full)" : ` (incremental from "${result.parent}")`),
      result.live
        ? "  live: the guest ran during the save"
        : "  paused: the guest was paused for the save",
      ...(result.pausedBecause === null ? [] : [`  note: ${result.pausedBecause}`]),
    ].join("\n");
    ctx.result(result, human);
  },
};

/** `--parent X` → { parent: X }; absent → {} (the VM's origin, if any). */
function parentOption(parent: string | undefined): { parent?: string } {
  return parent === undefined ? {} : { parent };
}

const RESTORE_OPTIONS = {
  name: { type: "string" },
  mode: { type: "string" },
  wait: { type: "boolean" },
} as const;

export const restoreCommand: Command = {
  usage:
    "CHECKPOINT [--name VM] [--mode eager|lazy|partial|auto] [--wait]   restore into a new " +
    "managed VM (auto: partial with the checkpoint's working set, else lazy)",
  async run(ctx, args) {
    const p = parse(args, RESTORE_OPTIONS, ["checkpoint"]);
    const mode = choice(p.str("mode"), MODES, "auto", "mode");
    if (mode === "eager") {
      const result = await restore({ ...restoreArgs(ctx, p), mode });
      ctx.done();
      const seconds = (result.wallMs / 1000).toFixed(2);
      ctx.result(
        result,
        `restored "${p.arg(0)}" as VM "${result.vm.name}" (eager) in ${seconds} s`,
      );
      return;
    }
    if (p.flag("wait")) {
      const running = await restorePostcopy(ctx, p, mode);
      const report = await running.fill;
      ctx.done();
      ctx.result(
        { ...describeRunning(running), fill: withoutTrace(report) },
        `${humanRunning(p.arg(0), running)}\n${humanFill(report)}`,
      );
      return;
    }
    const line = await spawnServer(ctx, p, args);
    ctx.result(
      line,
      `${humanLine(p.arg(0), line)}\n  the page server (pid ${line.server}) fills it`,
    );
  },
};

/** Hidden: the detached page server of `restore` without --wait. */
export const serveRestoreCommand: Command = {
  usage: "(internal) serves a lazy or partial restore for `restore`",
  hidden: true,
  async run(ctx, args) {
    const p = parse(args, RESTORE_OPTIONS, ["checkpoint"]);
    const mode = choice(p.str("mode"), MODES, "auto", "mode");
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
  },
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

/** What the parent prints, from the child's one JSON line. */
interface RunningLine {
  readonly state: "running";
  readonly vm: string;
  readonly mode: string;
  readonly wallMs: number;
  readonly pagesPrefetched: number;
  readonly server: number;
  readonly log: string;
}

function describeRunning(r: PostcopyRestoreResult) {
  return { vm: r.vm.name, mode: r.mode, wallMs: r.wallMs, pagesPrefetched: r.pagesPrefetched };
}

function report(line: object): void {
  writeSync(REPORT_FD, `${JSON.stringify(line)}\n`);
  closeSync(REPORT_FD);
}

/** Spawns `__serve-restore` detached, waits for its running line, and lets it go on alone. */
async function spawnServer(ctx: Context, p: Parsed, args: readonly string[]): Promise<RunningLine> {
  const dir = restoresDir(ctx.home, p.arg(0));
  await mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const log = join(dir, `${stamp}-${p.str("name") ?? "restore"}.log`);
  const logFd = openSync(log, "a");
  const script = process.argv[1];
  if (script === undefined) throw new Error("Cannot find the snapwake script to spawn");
  const child = spawn(process.execPath, [...process.execArgv, script, "__serve-restore", ...args], {
    detached: true,
    stdio: ["ignore", logFd, logFd, "pipe"],
    env: { ...process.env },
  });
  closeSync(logFd);
  let text = "";
  const pipe = child.stdio[REPORT_FD];
  if (!(pipe instanceof Readable)) throw new Error("Cannot read the page server's pipe");
  pipe.setEncoding("utf8");
  pipe.on("data", (chunk: string) => {
    text += chunk;
  });
  const exitCode = await new Promise<number | null>((resolve) => {
    pipe.once("end", () => resolve(null));
    child.once("exit", (code) => resolve(code));
  });
  child.unref();
  pipe.destroy();
  const line = parseLine(text, log, exitCode);
  return { ...line, server: child.pid ?? line.server, log };
}

function parseLine(text: string, log: string, exitCode: number | null): RunningLine {
  let line: unknown;
  try {
    line = JSON.parse(text.trim());
  } catch (cause) {
    throw new Error(`The page server exited (${exitCode}) before the guest ran; see ${log}`, {
      cause,
    });
  }
  const o = line as { state?: unknown; error?: ErrorLine };
  if (o.state === "running") return line as RunningLine;
  throw reviveError(o.error ?? {}, log);
}

function describeError(error: unknown) {
  if (error instanceof InvalidCheckpointError)
    return { name: error.name, message: error.reason, checkpoint: error.checkpoint };
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: "Error", message: String(error) };
}

interface ErrorLine {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly checkpoint?: unknown;
}

/** The child's error as the class main.ts maps to an exit code and a hint. */
function reviveError(e: ErrorLine, log: string): Error {
  const text = typeof e.message === "string" ? e.message : `unknown failure; see ${log}`;
  switch (e.name) {
    case "InvalidCheckpointError":
      return new InvalidCheckpointError(String(e.checkpoint), text);
    case "UsageError":
      return new UsageError(text);
    case "NotFoundError":
      return new NotFoundError(text);
    case "QemuError":
    case "QmpCommandError":
      return new QemuError(text);
    default:
      return new Error(`${text} (see ${log})`);
  }
}

function withoutTrace(r: FillReport) {
  const { trace, ...rest } = r;
  return { ...rest, traceRequests: trace.length };
}

function humanRunning(checkpoint: string, r: PostcopyRestoreResult): string {
  return humanLine(checkpoint, { ...describeRunning(r), state: "running", server: 0, log: "" });
}

function humanLine(checkpoint: string, l: RunningLine): string {
  const prefetched = l.pagesPrefetched > 0 ? `, ${l.pagesPrefetched} pages prefetched` : "";
  const seconds = (l.wallMs / 1000).toFixed(2);
  return `restored "${checkpoint}" as VM "${l.vm}" (${l.mode}): running in ${seconds} s${prefetched}`;
}

function humanFill(r: FillReport): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  return [
    `filled in ${s(r.timeToFullFillMs)} s (completed ${s(r.timeToCompletedMs)} s): ` +
      `${r.lazyRequests} pages requested, ${r.pagesPushed} pushed, ${r.pagesPrefetched} prefetched`,
    `  request service p50 ${r.serviceLatency.p50Ms.toFixed(2)} ms, ` +
      `p99 ${r.serviceLatency.p99Ms.toFixed(2)} ms; ` +
      `read ${(r.packBytesRead / MIB).toFixed(1)} MiB of chunks`,
    `  record: ${r.recordPath ?? "(none)"}`,
  ].join("\n");
}
