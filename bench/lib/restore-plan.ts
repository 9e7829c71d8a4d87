/**
 * The restore bench's vocabulary: cache conditions, modes, the plan of one guest and what its
 * runs measured (restore-bench.ts runs them, restore-measure.ts times one, restore-format.ts
 * prints them).
 */
import type { GuestParams } from "../../src/guest/index.ts";
import type { TickCounter } from "./first-output.ts";

export const CACHES = ["warm", "cold", "throttled"] as const;
export type Cache = (typeof CACHES)[number];
export const MODES = ["qemu", "eager", "lazy", "auto", "partial", "partial-ws"] as const;
export type Mode = (typeof MODES)[number];
export const MODE_LABELS: Record<Mode, string> = {
  qemu: "QEMU's own",
  eager: "snapwake eager",
  lazy: "snapwake lazy",
  auto: "snapwake auto",
  partial: "partial (profiled WS)",
  "partial-ws": "partial (write set)",
};

/** A restore that shows no useful output in 10 minutes has failed. */
export const FIRST_OUTPUT_BUDGET_MS = 600_000;
/** A lazy fill that has not finished in 20 minutes has failed (4 GiB at a throttled 5 MB/s). */
export const FILL_BUDGET_MS = 1_200_000;
export const RECORD_POLL_MS = 100;
export const VERIFY_TIMEOUT_MS = 600_000;
export const SWEEP_WAIT_MS = 120_000;

export interface Throttle {
  readonly mbps: number;
  readonly latencyMs: number;
}

export interface GuestPlan {
  readonly sizeMiB: number;
  readonly workload: "hot" | "sweep";
  readonly params: GuestParams;
  readonly caches: readonly Cache[];
  readonly modes: readonly Mode[];
  readonly throttle: Throttle;
  /** Upper bound of the profile's window, s; null: the window closes once the trace settles. */
  readonly profileSeconds: number | null;
  /** "paused": both saves pause the guest first (--stop-first); "live": precopy while it runs. */
  readonly save: "paused" | "live";
}

export interface ModeRun {
  readonly mode: Mode;
  readonly label: string;
  /** What `auto` chose, or the mode itself. */
  readonly ran: string;
  /** Null when the mode could not run here (`skipped` says why). */
  readonly firstOutputMs: number | null;
  readonly firstPingMs: number | null;
  /** Restore invoked → the restore command (or QEMU's migration + cont) returned. */
  readonly commandMs: number | null;
  readonly prefetched: number | null;
  readonly lazyFaults: number | null;
  readonly pushed: number | null;
  readonly fullFillMs: number | null;
  /** The page server's own clock: its restore start → RUN handed to QEMU (lazy, partial). */
  readonly runMs: number | null;
  readonly serviceMs: { p50: number; p99: number; max: number } | null;
  readonly packMiBRead: number | null;
  readonly verifyBad: number | null;
  readonly skipped: string | null;
}

export interface CacheRun {
  readonly cache: Cache;
  readonly modes: ModeRun[];
}

export interface GuestResult {
  readonly sizeMiB: number;
  readonly workload: "hot" | "sweep";
  readonly params: GuestParams;
  readonly save: "paused" | "live";
  readonly counter: TickCounter;
  readonly bootMs: number;
  readonly saves: {
    readonly qemu: { ms: number; bytes: number; savedCounter: number; sweepPhaseMs: number };
    readonly snapwake: {
      /** `snapwake save` spawn → exit. */
      ms: number;
      bytes: number;
      streamBytes: number;
      writeSetPages: number;
      savedCounter: number;
      sweepPhaseMs: number;
    };
  };
  readonly profile: {
    ms: number;
    tracedPages: number;
    workingSetPages: number;
    prefetchPagesAfter: number | null;
  } | null;
  readonly runs: CacheRun[];
}

export interface Ctx {
  readonly home: string;
  readonly workDir: string;
  readonly plan: GuestPlan;
  readonly log: (line: string) => void;
  readonly qemuFile: string;
  readonly checkpoint: string;
  readonly counter: TickCounter;
  readonly savedCounter: { qemu: number; snapwake: number };
}
