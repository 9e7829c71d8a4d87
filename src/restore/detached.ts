/**
 * The detached page server of a lazy or partial restore. Its page server must outlive the
 * command that asked for it (the guest needs it until every page is in), so the restore is two
 * processes: the caller, which spawns the server (`spawnPageServer`) and waits for one JSON
 * line on the server's fd 3, and the server, which restores and reports "running" (or why not)
 * on that line (`reportRunning`, `reportFailed`) and then serves until the fill is done. Its
 * stdout and stderr are its log, next to the checkpoint's restore records.
 *
 * What the server runs is the caller's to say (the CLI spawns itself with a hidden command);
 * this module owns the spawn, the report channel and reviving the server's error as the class
 * it had, so a caller maps it as if the restore had run in its own process.
 *
 * Only the server's start is on the restore's critical path: this module imports nothing of
 * the restore code, so a caller loads it before the spawn at little cost.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { abortError } from "../abort.ts";
import {
  InterruptedError,
  InvalidCheckpointError,
  NotFoundError,
  QemuError,
  StoreBusyError,
  UsageError,
} from "../errors.ts";
import { restoresDir } from "../store/layout.ts";

/** The server's report channel: its fd 3. */
export const REPORT_FD = 3;

/** The server's line once the guest runs. */
export interface RunningLine {
  readonly state: "running";
  readonly vm: string;
  readonly mode: string;
  readonly wallMs: number;
  readonly pagesPrefetched: number;
  /** The page server's pid. */
  readonly server: number;
}

/** The server's line when the restore failed before the guest ran. */
export interface FailedLine {
  readonly state: "failed";
  readonly error: ErrorLine;
}

interface ErrorLine {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly checkpoint?: unknown;
}

/** A detached restore whose guest runs, as its caller sees it. */
export interface DetachedRestore extends RunningLine {
  /** The server's log file. */
  readonly log: string;
}

export interface SpawnOptions {
  readonly home: string;
  readonly checkpoint: string;
  /** Names the log file (default "restore"). */
  readonly vmName?: string;
  /** The server's program and arguments, e.g. this CLI with its hidden serve command. */
  readonly command: readonly [string, ...string[]];
  /** Stops the server before it reported (it stops QEMU); rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /**
   * A line the server reads on its stdin (readHandoff) once the caller has it: the QEMU the
   * caller starts while the server starts (ADR 0015). If it rejects, the server is stopped
   * and spawnPageServer rejects with that error once the server is gone.
   */
  readonly handoff?: Promise<string>;
}

/**
 * Spawns the page server detached (before it returns: the spawn goes first), waits for its
 * report, and lets it go on alone.
 */
export async function spawnPageServer(opts: SpawnOptions): Promise<DetachedRestore> {
  const dir = restoresDir(opts.home, opts.checkpoint);
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const log = join(dir, `${stamp}-${opts.vmName ?? "restore"}.log`);
  const logFd = openSync(log, "a");
  const [program, ...args] = opts.command;
  const child = spawn(program, args, {
    detached: true,
    stdio: [opts.handoff === undefined ? "ignore" : "pipe", logFd, logFd, "pipe"],
  });
  closeSync(logFd);
  const stop = () => child.kill("SIGTERM"); // the server stops QEMU, reports, exits
  opts.signal?.addEventListener("abort", stop, { once: true });
  let handoffFailed: { error: unknown } | undefined;
  child.stdin?.on("error", () => undefined); // a server gone before it read: its exit says why
  opts.handoff?.then(
    (line) => child.stdin?.end(`${line}\n`),
    (error: unknown) => {
      handoffFailed = { error };
      child.stdin?.end();
      stop();
    },
  );
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
  if (opts.signal?.aborted) {
    // Wait until it is gone: then QEMU is stopped and nothing of this restore is registered.
    if (child.exitCode === null && child.signalCode === null)
      await new Promise((resolve) => child.once("exit", resolve));
    throw abortError(opts.signal);
  }
  if (handoffFailed !== undefined) {
    if (child.exitCode === null && child.signalCode === null)
      await new Promise((resolve) => child.once("exit", resolve));
    throw handoffFailed.error;
  }
  opts.signal?.removeEventListener("abort", stop);
  child.unref();
  pipe.destroy();
  const line = parseLine(text, log, exitCode);
  return { ...line, server: child.pid ?? line.server, log };
}

/** In the server: the line its caller sent as `handoff`; rejects if the caller sent none. */
export async function readHandoff(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin.setEncoding("utf8")) {
    text += chunk;
    const end = text.indexOf("\n");
    if (end >= 0) return text.slice(0, end);
  }
  throw new Error("The restore command stopped before it handed its QEMU to the page server");
}

/** In the server: the guest runs. Closes the channel (the caller then lets the server go). */
export function reportRunning(line: Omit<RunningLine, "state">): void {
  report({ state: "running", ...line });
}

/** In the server: the restore failed before the guest ran. */
export function reportFailed(error: unknown): void {
  report({ state: "failed", error: describeError(error) });
}

function report(line: RunningLine | FailedLine): void {
  writeSync(REPORT_FD, `${JSON.stringify(line)}\n`);
  closeSync(REPORT_FD);
}

function describeError(error: unknown): ErrorLine {
  if (error instanceof InvalidCheckpointError)
    return { name: error.name, message: error.reason, checkpoint: error.checkpoint };
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: "Error", message: String(error) };
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

/** The server's error as the class it had, so the caller maps it to the same exit code. */
function reviveError(e: ErrorLine, log: string): Error {
  const text = typeof e.message === "string" ? e.message : `unknown failure; see ${log}`;
  switch (e.name) {
    case "InvalidCheckpointError":
      return new InvalidCheckpointError(String(e.checkpoint), text);
    case "UsageError":
      return new UsageError(text);
    case "NotFoundError":
      return new NotFoundError(text);
    case "StoreBusyError":
      return new StoreBusyError(text);
    case "InterruptedError":
      return new InterruptedError(text);
    case "QemuError":
    case "QmpCommandError":
      return new QemuError(text);
    default:
      return new Error(`${text} (see ${log})`);
  }
}
