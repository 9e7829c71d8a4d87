/**
 * The demand-only window of a profiling restore (PageServerDeps.demandOnly): open from the
 * moment the guest is let run until its request trace settles (TraceSettle, src/wss) or the
 * bound passes; with `fixed`, exactly until the bound. The page server tells it of every
 * request; a timer looks at the rule once a bucket.
 *
 * Invariants: it closes exactly once and its timers are gone from then on; close() is safe at
 * any time (the fill closes it when it ends or fails, so no timer outlives the restore).
 */
import assert from "node:assert/strict";
import { PROFILE_SECONDS_MAX } from "../../limits.ts";
import { type SettleRule, TraceSettle } from "../../wss/index.ts";
import type { DemandOnlyWindow } from "./page-server-deps.ts";

export interface TraceWindowOptions {
  /** Upper bound of the window, ms after the guest is let run. */
  readonly maxMs: number;
  /** Stay open exactly maxMs, without settling. Default false. */
  readonly fixed?: boolean;
  /** The settle rule (tests); default SETTLE_RULE_DEFAULT. */
  readonly rule?: SettleRule;
}

/**
 * Why the window closed: the trace settled, the bound passed, every page was requested before
 * either (the fill ended), or the fill failed.
 */
export type TraceWindowEnd = "settled" | "bound" | "filled" | "failed";

export interface TraceWindowReport {
  /** When it closed, ms since the guest was let run (the trace's clock). */
  readonly closedAtMs: number;
  readonly end: TraceWindowEnd;
  readonly fixed: boolean;
  readonly maxMs: number;
  /** Distinct pages requested while it was open, and the most in one bucket. */
  readonly distinctPages: number;
  readonly peakBucketPages: number;
}

export class DemandWindow implements DemandOnlyWindow {
  readonly closed: Promise<void>;
  readonly #opts: TraceWindowOptions;
  readonly #settle: TraceSettle;
  readonly #now: () => number;
  readonly #resolve: () => void;
  #startMs: number | null = null;
  #timers: NodeJS.Timeout[] = [];
  #report: TraceWindowReport | null = null;

  constructor(opts: TraceWindowOptions, now: () => number = () => performance.now()) {
    assert(
      opts.maxMs > 0 && opts.maxMs <= PROFILE_SECONDS_MAX * 1000,
      "a trace window bound inside (0, PROFILE_SECONDS_MAX]",
    );
    this.#opts = opts;
    this.#settle = new TraceSettle(opts.rule);
    this.#now = now;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    this.#resolve = resolve;
  }

  /** Starts the clock: call when the page server's begin() starts the trace's. */
  start(): void {
    assert(this.#startMs === null, "start() once");
    this.#startMs = this.#now();
    if (this.#report !== null) return; // closed before it started (the restore failed)
    this.#timers.push(setTimeout(() => this.close("bound"), this.#opts.maxMs));
    if (this.#opts.fixed === true) return;
    const tick = setInterval(() => {
      if (this.#settle.settled(this.#elapsedMs())) this.close("settled");
    }, this.#settle.rule.bucketMs);
    this.#timers.push(tick);
  }

  isOpen(): boolean {
    return this.#report === null;
  }

  onRequest(tMs: number, firstRequest: boolean): void {
    if (this.#report === null) this.#settle.record(tMs, firstRequest);
  }

  /** Closes the window (the server pushes again); later calls do nothing. */
  close(end: TraceWindowEnd): void {
    if (this.#report !== null) return;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers = [];
    this.#report = {
      closedAtMs: this.#elapsedMs(),
      end,
      fixed: this.#opts.fixed === true,
      maxMs: this.#opts.maxMs,
      distinctPages: this.#settle.distinctPages,
      peakBucketPages: this.#settle.peakBucketPages,
    };
    this.#resolve();
  }

  /** Null while open. */
  get report(): TraceWindowReport | null {
    return this.#report;
  }

  #elapsedMs(): number {
    return this.#startMs === null ? 0 : this.#now() - this.#startMs;
  }
}
