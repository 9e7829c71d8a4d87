/**
 * The request trace of a lazy or partial restore: every page request QEMU sent, in arrival
 * order, with its time since the postcopy RUN was handed to QEMU and whether the page was
 * already placed or in flight. It is the raw material of a working set (VEE'11 "memory
 * tracing"). Also the request service latencies for the p50/p99.
 *
 * Invariant: both recorders are bounded; what does not fit is counted, never silently lost.
 */
import assert from "node:assert/strict";

export interface TraceRecord {
  /** RAM block index (the checkpoint's block order). */
  readonly block: number;
  readonly page: number;
  /** Since the postcopy package (ending in RUN) was handed to the socket; ms. */
  readonly tMs: number;
  /** The page was already sent (placed or on its way) when the request arrived. */
  readonly inFlight: boolean;
}

export class RequestTrace {
  readonly #max: number;
  readonly #records: TraceRecord[] = [];
  #dropped = 0;

  constructor(max: number) {
    assert(Number.isSafeInteger(max) && max >= 0, "a trace bound");
    this.#max = max;
  }

  record(r: TraceRecord): void {
    if (this.#records.length < this.#max) this.#records.push(r);
    else this.#dropped += 1;
  }

  get records(): readonly TraceRecord[] {
    return this.#records;
  }

  /** Requests past the bound: counted, not kept. */
  get dropped(): number {
    return this.#dropped;
  }
}

export interface LatencySummary {
  /** Requests measured (kept or not). */
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Request service latencies: request received → its page handed to the socket. */
export class LatencyRecorder {
  readonly #values: Float64Array;
  #kept = 0;
  #count = 0;
  #max = 0;

  constructor(max: number) {
    this.#values = new Float64Array(max);
  }

  add(ms: number): void {
    this.#count += 1;
    this.#max = Math.max(this.#max, ms);
    if (this.#kept < this.#values.length) this.#values[this.#kept++] = ms;
  }

  summary(): LatencySummary {
    const sorted = this.#values.slice(0, this.#kept).sort();
    return {
      count: this.#count,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: this.#max,
    };
  }
}

/** Nearest-rank percentile of ascending `sorted` (0 when empty). */
export function percentile(sorted: Float64Array, q: number): number {
  assert(q > 0 && q <= 1, "a quantile in (0, 1]");
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}
