/**
 * The snapwake command line as a user runs it: one process per command. `snapwakeCli` is the
 * one place that knows where the CLI's entry point is: the package's own `bin/snapwake.js`,
 * which runs the compiled bundle in dist/, as an installed snapwake does. The checkout's
 * `bin/snapwake` wrapper would fall back to the TypeScript sources (a slower start) the moment
 * a source file is newer than dist/, so a bench run would quietly time another program:
 * a stale dist/ is refused instead. Everything else spawns through `runCli`.
 */
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The command and leading arguments that start the snapwake CLI of this checkout. */
export function snapwakeCli(): { readonly command: string; readonly args: readonly string[] } {
  assertDistFresh();
  return { command: process.execPath, args: [join(ROOT, "bin", "snapwake.js")] };
}

/** Throws unless dist/ was built after every source file changed (scripts/build-dist.ts). */
function assertDistFresh(): void {
  const stamp = statSync(join(ROOT, "dist", ".stamp"), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const newer = newestSource(join(ROOT, "src"));
  if (newer !== null && newer.mtimeMs > stamp)
    throw new Error(`dist/ is older than ${newer.path}: run \`npm run build\` before the bench`);
}

function newestSource(dir: string): { path: string; mtimeMs: number } | null {
  let newest: { path: string; mtimeMs: number } | null = null;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const found = entry.isDirectory()
      ? newestSource(path)
      : entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")
        ? { path, mtimeMs: statSync(path).mtimeMs }
        : null;
    if (found !== null && (newest === null || found.mtimeMs > newest.mtimeMs)) newest = found;
  }
  return newest;
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
