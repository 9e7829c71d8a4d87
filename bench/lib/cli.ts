/**
 * The snapwake command line as a user runs it: one process per command. `snapwakeCli` is the
 * one place that knows where the CLI's entry point is (the bench must not care whether it is a
 * script running TypeScript or compiled JS); everything else spawns through `runCli`.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The command and leading arguments that start the snapwake CLI of this checkout. */
export function snapwakeCli(): { readonly command: string; readonly args: readonly string[] } {
  return { command: fileURLToPath(new URL("../../bin/snapwake", import.meta.url)), args: [] };
}

export interface CliRun {
  /** The `--json` result the command printed on stdout. */
  readonly json: unknown;
  /** Spawn → exit, ms. */
  readonly wallMs: number;
}

/** A failed command: its exit code and what it printed on stderr. */
export class CliError extends Error {
  override name = "CliError";
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(args: readonly string[], exitCode: number | null, stderr: string) {
    super(`snapwake ${args.join(" ")} exited ${exitCode}: ${stderr.trim() || "(no message)"}`);
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/**
 * Runs `snapwake <args> --json` with SNAPWAKE_HOME=home (plus `env`), and parses its stdout.
 * `startedAt` is when the process was spawned (performance.now()), for callers timing from
 * the invocation.
 */
export function runCli(
  home: string,
  args: readonly string[],
  opts: { env?: Readonly<Record<string, string>>; onSpawn?: (startedAt: number) => void } = {},
): Promise<CliRun> {
  const cli = snapwakeCli();
  const all = [...cli.args, ...args, "--json"];
  const started = performance.now();
  const child = spawn(cli.command, all, {
    env: { ...process.env, SNAPWAKE_HOME: home, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  opts.onSpawn?.(started);
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => {
    out += s;
  });
  child.stderr.setEncoding("utf8").on("data", (s: string) => {
    err += s;
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      const wallMs = performance.now() - started;
      if (code !== 0) {
        reject(new CliError(args, code, err));
        return;
      }
      try {
        resolve({ json: JSON.parse(out) as unknown, wallMs });
      } catch (cause) {
        reject(
          new Error(`snapwake ${args.join(" ")} printed no JSON: ${out.slice(0, 200)}`, { cause }),
        );
      }
    });
  });
}
