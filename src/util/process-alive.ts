/**
 * Whether a process id is in use, by signal 0 (nothing is delivered). It says nothing about
 * *which* process has the id: callers that must know check more (the VM's pid file in its
 * command line, a start time in /proc).
 */
import { errorCode } from "./error-code.ts";

/** Linux's PID_MAX_LIMIT; larger ids cannot exist (and process.kill refuses them). */
const PID_MAX = 4_194_304;

/**
 * True when some process has `pid`, including one we may not signal (EPERM). An id that cannot
 * name a single process is false: 0 and negative ids would address process groups.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > PID_MAX) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    const code = errorCode(error);
    if (code === "ESRCH") return false;
    if (code === "EPERM") return true; // exists, owned by someone else
    throw error;
  }
}
