/**
 * `snapwake restore`. A lazy or partial restore's page server must outlive the command (the
 * guest needs it until every page is in), so without --wait the command is two processes:
 * this one, which the shell waits for, and a detached `__serve-restore` (serve-restore.ts) that
 * opens the checkpoint, starts QEMU, serves the pages and reports "running" (or why not) as
 * one JSON line on its fd 3; this one prints that line's content and exits.
 *
 * Only the server's start is on the restore's critical path: this module imports nothing of
 * the restore code (it is loaded before the spawn, so it must stay light), and the spawn is
 * the first thing the command does. Eager restores and --wait run in this process instead.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { InvalidCheckpointError, NotFoundError, QemuError, UsageError } from "../../errors.ts";
// The record module is a path helper with no imports of its own: the restore barrel is not.
import { restoresDir } from "../../restore/postcopy/record.ts";
import type { Context } from "../context.ts";
import type { Run } from "./index.ts";
import type { Parsed } from "./parse.ts";

/** The server's report channel: its fd 3. */
export const REPORT_FD = 3;

/** The server's one line once the guest runs. */
export interface RunningLine {
  readonly state: "running";
  readonly vm: string;
  readonly mode: string;
  readonly wallMs: number;
  readonly pagesPrefetched: number;
  readonly server: number;
  readonly log: string;
}

/** The server's one line when the restore failed before the guest ran. */
export interface FailedLine {
  readonly state: "failed";
  readonly error: ErrorLine;
}

export interface ErrorLine {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly checkpoint?: unknown;
}

export const runRestore: Run = async (ctx, p) => {
  if (p.str("mode") === "eager" || p.flag("wait")) {
    const { runRestoreHere } = await import("./serve-restore.ts");
    return runRestoreHere(ctx, p);
  }
  const line = await spawnServer(ctx, p);
  ctx.result(line, `${humanLine(p.arg(0), line)}\n  the page server (pid ${line.server}) fills it`);
};

/** Spawns `__serve-restore` detached, waits for its report, and lets it go on alone. */
async function spawnServer(ctx: Context, p: Parsed): Promise<RunningLine> {
  const script = process.argv[1];
  if (script === undefined) throw new Error("Cannot find the snapwake script to spawn");
  const dir = restoresDir(ctx.home, p.arg(0));
  await mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const log = join(dir, `${stamp}-${p.str("name") ?? "restore"}.log`);
  const logFd = openSync(log, "a");
  const argv = [...process.execArgv, script, "__serve-restore", ...p.raw];
  const child = spawn(process.execPath, argv, {
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

/** The server's error as the class main.ts maps to an exit code and a hint. */
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

/** The summary line of a restore whose guest runs. */
export function humanLine(
  checkpoint: string,
  l: Pick<RunningLine, "vm" | "mode" | "wallMs" | "pagesPrefetched">,
): string {
  const prefetched = l.pagesPrefetched > 0 ? `, ${l.pagesPrefetched} pages prefetched` : "";
  const seconds = (l.wallMs / 1000).toFixed(2);
  return `restored "${checkpoint}" as VM "${l.vm}" (${l.mode}): running in ${seconds} s${prefetched}`;
}
