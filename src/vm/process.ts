/**
 * Is the QEMU of a managed VM still alive? A pid alone can be reused by an unrelated process
 * after QEMU dies, so on Linux the process must also carry the VM's pid-file path in its
 * command line. A zombie (dead, not yet reaped) has an empty command line and counts as dead.
 */

import { readFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { QemuError } from "../errors.ts";
import { VM_PID_POLL_MS } from "../limits.ts";
import { errorCode, processAlive } from "../util/index.ts";

/** Whether `pid` is a live QEMU started with `-pidfile <pidFile>`. */
export async function isQemuAlive(pid: number, pidFile: string): Promise<boolean> {
  let cmdline: string;
  try {
    cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
  } catch (error) {
    const code = errorCode(error);
    if (code === "ENOENT" || code === "ESRCH") return false;
    if (code !== "EACCES" && code !== "ENOTDIR") throw error;
    return processAlive(pid); // no usable /proc: fall back to "some process has this pid"
  }
  return cmdline.split("\0").includes(pidFile);
}

/** The pid QEMU wrote to `pidFile`, or undefined when there is none (yet). */
export async function readPidFile(pidFile: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(pidFile, "utf8");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/** Sends `signal` to `pid`; a process that is already gone is not an error. */
export function signalProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    if (errorCode(error) !== "ESRCH") throw error;
  }
}

/**
 * Resolves true once the QEMU is gone (via `exited` when we spawned it, else by polling),
 * or false when `timeoutMs` passes first.
 */
export async function waitForQemuExit(
  pid: number,
  pidFile: string,
  exited: Promise<unknown>,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  let done = false;
  const gone = exited.then(() => {
    done = true;
  });
  while (!done) {
    if (!(await isQemuAlive(pid, pidFile))) return true;
    const remainingMs = deadline - performance.now();
    if (remainingMs <= 0) return false;
    await Promise.race([gone, delay(Math.min(VM_PID_POLL_MS, remainingMs))]);
  }
  return true;
}

/**
 * Resolves when the QEMU is gone, polling every VM_PID_POLL_MS. The polling timer does not
 * keep Node alive; `signal` stops the polling (the promise then never settles).
 */
export function watchQemuExit(pid: number, pidFile: string, signal: AbortSignal): Promise<null> {
  return new Promise<null>((resolve, reject) => {
    const check = (): void => {
      if (signal.aborted) return;
      isQemuAlive(pid, pidFile).then((alive) => {
        if (!alive) resolve(null);
        else setTimeout(check, VM_PID_POLL_MS).unref();
      }, reject);
    };
    check();
  });
}

/** A QemuError for a QEMU that did not exit after being asked to. */
export function stuckError(name: string, pid: number, timeoutMs: number): QemuError {
  return new QemuError(
    `QEMU of VM "${name}" (pid ${pid}) did not exit within ${timeoutMs} ms even after SIGKILL; ` +
      "check it with `ps` and kill it by hand",
  );
}
