/**
 * What every command gets: where the store lives, whether to print JSON, and the one place
 * that writes to stdout/stderr.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import type { Progress } from "../progress.ts";
// Not the vm barrel: it brings QEMU's launcher and QMP client, ~20 modules every command would
// load at start, and a detached restore before it can spawn its page server.
import { type QemuInstall, resolveQemuChoice } from "../vm/qemu-install.ts";
import { ProgressBar } from "./progress-bar.ts";

export interface Context {
  readonly home: string;
  readonly json: boolean;
  /** Aborts on SIGINT or SIGTERM for commands that undo their work when cancelled (main.ts). */
  readonly signal: AbortSignal;
  /**
   * $SNAPWAKE_QEMU resolved ("10.0", "7.2" or a path; docs/qemu-versions.md), or undefined
   * when unset. A default for `vm start` (a spec's own qemu field wins) and the QEMU a restore
   * runs on (instead of the one the checkpoint's spec names). Throws UsageError when invalid.
   */
  qemu(): QemuInstall | undefined;
  /** $SNAPWAKE_RAM_DIR: the default RAM directory of eager restores (ADR 0035), or undefined. */
  ramDir(): string | undefined;
  /** Prints a result: JSON on --json, else the human text. */
  result(value: unknown, human: string): void;
  /** Progress on a TTY (stderr), silent in pipes and with --json. */
  progress(p: Progress): void;
  /** Ends any progress display. */
  done(): void;
}

/** Where scripts/setup.sh unpacks QEMU 10.0 (build/qemu-10.0 in the source tree). */
const BUILD_DIR = join(import.meta.dirname, "..", "..", "build");

/** $SNAPWAKE_HOME, else the XDG data dir, else ~/.local/share/snapwake. */
export function resolveHome(env: NodeJS.ProcessEnv): string {
  if (env.SNAPWAKE_HOME) return env.SNAPWAKE_HOME;
  const xdg = env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(xdg, "snapwake");
}

export function makeContext(
  env: NodeJS.ProcessEnv,
  json: boolean,
  signal: AbortSignal = new AbortController().signal,
): Context {
  const bar = !json && process.stderr.isTTY ? new ProgressBar(process.stderr) : null;
  return {
    home: resolveHome(env),
    json,
    signal,
    qemu() {
      const choice = env.SNAPWAKE_QEMU;
      return choice === undefined || choice === ""
        ? undefined
        : resolveQemuChoice(choice, BUILD_DIR);
    },
    ramDir() {
      return env.SNAPWAKE_RAM_DIR || undefined;
    },
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
