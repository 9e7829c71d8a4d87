/**
 * When a profiling trace has seen the working set (VEE'11 "memory tracing"): the window stays
 * open until the rate of NEW distinct pages has settled. Requests are counted in buckets of
 * PROFILE_BUCKET_MS by the time they arrived (ms since the guest was let run); the trace has
 * settled at `now` when the last PROFILE_QUIET_MS brought new pages at a mean rate of at most
 * PROFILE_SETTLE_RATIO of the peak bucket's rate. Pure: the caller supplies every time.
 *
 * Why this rule:
 * - new pages, not requests: a repeated request for a page in flight is noise;
 * - relative to the peak: a random hot writer never stops finding an odd untouched page, and
 *   its new-page rate decays like exp(-t); "2 % of the peak" closes the window at ~98 % of
 *   its hot set whatever the hot set's size;
 * - a quiet span, not a single quiet bucket: a periodic task (a scan, a GC) that starts up to
 *   PROFILE_QUIET_MS after the guest runs falls inside the span that must stay quiet, so the
 *   window stays open through its first full period; a task recurring less often than that
 *   is not waited for (trace with a fixed window for those);
 * - while a sweep is being demand-paged its new pages arrive at the service rate, which is the
 *   peak, so the rule cannot close during the first sweep.
 *
 * Invariant: buckets are bounded by the window's own bound (at most PROFILE_SECONDS_MAX).
 */
import assert from "node:assert/strict";
import {
  PROFILE_BUCKET_MS,
  PROFILE_QUIET_MS,
  PROFILE_SECONDS_MAX,
  PROFILE_SETTLE_RATIO,
} from "../limits.ts";

export interface SettleRule {
  readonly bucketMs: number;
  /** The span that must stay (nearly) free of new pages; a whole number of buckets. */
  readonly quietMs: number;
  /** Mean new-page rate over the quiet span, relative to the peak bucket's, that is "settled". */
  readonly ratio: number;
}

export const SETTLE_RULE_DEFAULT: SettleRule = {
  bucketMs: PROFILE_BUCKET_MS,
  quietMs: PROFILE_QUIET_MS,
  ratio: PROFILE_SETTLE_RATIO,
};

/** New distinct pages per bucket of a request trace, and whether they have settled. */
export class TraceSettle {
  readonly rule: SettleRule;
  readonly #newPages: number[] = [];
  readonly #bucketsMax: number;
  #peak = 0;
  #distinct = 0;

  constructor(rule: SettleRule = SETTLE_RULE_DEFAULT) {
    assert(rule.bucketMs > 0 && rule.quietMs >= rule.bucketMs, "a quiet span of whole buckets");
    assert(Number.isInteger(rule.quietMs / rule.bucketMs), "a quiet span of whole buckets");
    assert(rule.ratio >= 0 && rule.ratio < 1, "a settle ratio in [0, 1)");
    this.rule = rule;
    this.#bucketsMax = Math.ceil((PROFILE_SECONDS_MAX * 1000) / rule.bucketMs) + 1;
  }

  /** A request at `tMs` (negative: before the guest ran, counted at 0); `newPage`: its first. */
  record(tMs: number, newPage: boolean): void {
    if (!newPage) return;
    const b = Math.min(this.#bucketsMax - 1, Math.max(0, Math.floor(tMs / this.rule.bucketMs)));
    while (this.#newPages.length <= b) this.#newPages.push(0);
    const n = (this.#newPages[b] ?? 0) + 1;
    this.#newPages[b] = n;
    this.#peak = Math.max(this.#peak, n);
    this.#distinct += 1;
  }

  /** Distinct pages recorded so far. */
  get distinctPages(): number {
    return this.#distinct;
  }

  /** The most new pages one bucket brought. */
  get peakBucketPages(): number {
    return this.#peak;
  }

  /** New pages that arrived in (nowMs - quietMs, nowMs], by whole buckets. */
  recentPages(nowMs: number): number {
    const { bucketMs, quietMs } = this.rule;
    const last = Math.floor(nowMs / bucketMs); // the current, still filling bucket
    const first = last - quietMs / bucketMs; // the quiet span's buckets before it
    let sum = 0;
    for (let b = Math.max(0, first); b <= last && b < this.#newPages.length; b++)
      sum += this.#newPages[b] ?? 0;
    return sum;
  }

  /**
   * True once the quiet span lies wholly after the guest started and brought new pages at a
   * mean rate ≤ ratio × the peak bucket's rate. A trace with no request settles at quietMs.
   */
  settled(nowMs: number): boolean {
    const { bucketMs, quietMs, ratio } = this.rule;
    if (nowMs < quietMs) return false;
    const spanBuckets = quietMs / bucketMs;
    return this.recentPages(nowMs) <= ratio * this.#peak * spanBuckets;
  }
}
