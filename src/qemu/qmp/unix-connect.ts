/**
 * Reaching a Unix socket that may not exist yet: a QEMU that was just spawned creates its QMP
 * socket a few milliseconds to seconds later. Retries are bounded by a deadline and stop
 * early when the caller's signal aborts (e.g. the QEMU being waited for has exited).
 */
import type { Socket } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { QemuError } from "../../errors.ts";
import { QMP_CONNECT_RETRY_MS } from "../../limits.ts";
import { connectUnix, errorCode } from "../../util/index.ts";

/** Not there yet, or there but not listening yet (a stale socket file). */
const RETRYABLE_CONNECT_CODES: ReadonlySet<string> = new Set(["ENOENT", "ECONNREFUSED", "EAGAIN"]);

/** Connects to `path`, retrying until `deadline` (performance.now() time). */
export async function connectWithRetry(
  path: string,
  deadline: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<Socket> {
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await connectUnix(path);
    } catch (error) {
      const code = errorCode(error) ?? "";
      if (!RETRYABLE_CONNECT_CODES.has(code)) {
        throw new QemuError(`Cannot connect to QMP socket ${path}: ${String(error)}`, {
          cause: error,
        });
      }
      if (performance.now() >= deadline) {
        throw new QemuError(
          `QMP socket ${path} did not accept a connection within ${timeoutMs} ms (${code}); ` +
            "is QEMU running with -qmp on that path?",
          { cause: error },
        );
      }
      await delay(QMP_CONNECT_RETRY_MS, undefined, signal === undefined ? {} : { signal }).catch(
        (abort: unknown) => {
          signal?.throwIfAborted();
          throw abort;
        },
      );
    }
  }
}

export function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
