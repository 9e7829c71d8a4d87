/**
 * What every command gets: where the store lives, whether to print JSON, and the one place
 * that writes to stdout/stderr.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import type { Progress } from "../progress.ts";
import { ProgressBar } from "./progress-bar.ts";

export interface Context {
  readonly home: string;
  readonly json: boolean;
  /** Prints a result: JSON on --json, else the human text. */
  result(value: unknown, human: string): void;
  /** Progress on a TTY (stderr), silent in pipes and with --json. */
  progress(p: Progress): void;
  /** Ends any progress display. */
  done(): void;
}

/** $SNAPWAKE_HOME, else the XDG data dir, else ~/.local/share/snapwake. */
export function resolveHome(env: NodeJS.ProcessEnv): string {
  if (env.SNAPWAKE_HOME) return env.SNAPWAKE_HOME;
  const xdg = env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(xdg, "snapwake");
}

export function makeContext(env: NodeJS.ProcessEnv, json: boolean): Context {
  const bar = !json && process.stderr.isTTY ? new ProgressBar(process.stderr) : null;
  return {
    home: resolveHome(env),
    json,
    result(value, human) {
      bar?.clear();
      process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
    },
    progress(p) {
      bar?.update(p);
    },
    done() {
      bar?.clear();
    },
  };
}
