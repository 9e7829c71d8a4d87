/**
 * An emulated slow store for benches and tests (never for production): with
 * `SNAPWAKE_STORE_THROTTLE=<MB/s>,<latency ms>` (e.g. `200,5`) every read of a checkpoint's
 * packs, index and device state costs what it would on network storage with that bandwidth and
 * latency. The bench feeds QEMU's own `-incoming exec:` reader through the same model
 * (bench/lib/throttled-read.ts), so both sides see one set of limits (docs/bench.md).
 *
 * The model, per process: a read of n bytes issued at t completes at
 * `max(t + latency, link free) + n / bandwidth`, and the link is then busy until that moment.
 * Latencies of reads in flight together overlap; their bytes share the one link. The real read
 * (usually from the page cache) runs first; only the remainder of the modelled time is slept.
 *
 * The CLI reads the variable (setStoreReadThrottle), in every snapwake process, the detached
 * page server included. Invariant: without it nothing is slowed and no timer is armed.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { UsageError } from "../../errors.ts";
import {
  STORE_THROTTLE_LATENCY_MS_MAX,
  STORE_THROTTLE_MBPS_MAX,
  STORE_THROTTLE_MBPS_MIN,
} from "../../limits.ts";

/** The environment variable that turns the emulated slow store on. */
export const STORE_THROTTLE_ENV = "SNAPWAKE_STORE_THROTTLE";

export interface ThrottleLimits {
  /** Link bandwidth, MB/s (10^6 bytes). */
  readonly mbps: number;
  /** Latency every read pays before its first byte, ms. */
  readonly latencyMs: number;
}

/** `"200,5"` → { mbps: 200, latencyMs: 5 }; anything else is a UsageError saying the form. */
export function parseThrottleLimits(text: string): ThrottleLimits {
  const parts = text.split(",").map((s) => s.trim());
  const mbps = Number(parts[0]);
  const latencyMs = Number(parts[1]);
  if (
    parts.length !== 2 ||
    parts[0] === "" ||
    parts[1] === "" ||
    !(mbps >= STORE_THROTTLE_MBPS_MIN && mbps <= STORE_THROTTLE_MBPS_MAX) ||
    !(latencyMs >= 0 && latencyMs <= STORE_THROTTLE_LATENCY_MS_MAX)
  ) {
    throw new UsageError(
      `${STORE_THROTTLE_ENV}="${text}": write "<MB/s>,<latency ms>", e.g. "200,5" ` +
        `(MB/s ${STORE_THROTTLE_MBPS_MIN}..${STORE_THROTTLE_MBPS_MAX}, ` +
        `latency 0..${STORE_THROTTLE_LATENCY_MS_MAX} ms), or unset it`,
    );
  }
  return { mbps, latencyMs };
}

export class ReadThrottle {
  readonly limits: ThrottleLimits;
  readonly #now: () => number;
  #linkFreeAt = 0;

  constructor(limits: ThrottleLimits, now: () => number = () => performance.now()) {
    this.limits = limits;
    this.#now = now;
  }

  /**
   * Books a read of `bytes` issued at `issuedAt` (a `now()` value) and returns the moment it
   * completes on the emulated store.
   */
  book(bytes: number, issuedAt: number): number {
    const start = Math.max(issuedAt + this.limits.latencyMs, this.#linkFreeAt);
    const done = start + bytes / (this.limits.mbps * 1000); // MB/s = 1000 bytes/ms
    this.#linkFreeAt = done;
    return done;
  }

  /** Runs `read` (of `bytes`), then waits out the rest of its time on the emulated store. */
  async read<T>(bytes: number, read: () => Promise<T>): Promise<T> {
    const done = this.book(bytes, this.#now());
    const result = await read();
    const left = done - this.#now();
    if (left > 0) await sleep(left);
    return result;
  }
}

let active: ReadThrottle | null = null;

/**
 * Sets the process's throttle from the SNAPWAKE_STORE_THROTTLE value (the CLI reads the
 * environment and calls this); undefined or "" turns it off.
 */
export function setStoreReadThrottle(text: string | undefined): void {
  active = text === undefined || text === "" ? null : new ReadThrottle(parseThrottleLimits(text));
}

/** The process's throttle, or null when reads are not slowed. */
export function storeReadThrottle(): ReadThrottle | null {
  return active;
}

/** `read()` through the store's throttle when there is one. */
export function throttledRead<T>(bytes: number, read: () => Promise<T>): Promise<T> {
  const throttle = storeReadThrottle();
  return throttle === null ? read() : throttle.read(bytes, read);
}
