/**
 * Cancellation by AbortSignal: the long operations (save, restore) race their waits against
 * the signal, so an interrupt ends the wait at once and their own failure path undoes what
 * they started. The error is the signal's reason when it is an Error (the CLI's is an
 * InterruptedError naming SIGINT or SIGTERM), else an InterruptedError.
 */
import { InterruptedError } from "./errors.ts";

/** The error an aborted `signal` stands for. */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new InterruptedError("Interrupted", null);
}

/** Throws abortError when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/**
 * `work`, or abortError as soon as `signal` aborts. `work` goes on (the caller's cleanup
 * stops it); a later rejection of it is taken care of here, never unhandled.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  work.catch(() => undefined);
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
