/**
 * Working sets from tracing (VEE'11 "memory tracing"): a lazy restore records every page the
 * guest asks for; the requests of its first seconds are the pages a restore should prefetch.
 *
 * - profile(): a traced lazy restore of a throw-away clone, discarded afterwards;
 * - saveAndContinue(): save, then the VM goes on as a lazily restored clone of its own
 *   checkpoint, so the first seconds after the save point give the working set for free.
 *
 * The trace window is pure demand paging (no locality push, no background fill: nothing the
 * guest has not asked for is placed), so every page the guest touches in it is requested and
 * traced. It closes when the trace settles (TraceSettle: a quiet span without new pages) or
 * at its bound; `fixed` keeps it open exactly the bound. Each new trace refines the kept
 * working set (union at earliest first access, bounded: REAP-style), and the checkpoint is
 * then rewritten with that working set packed first (Halite locality layout,
 * relayoutCheckpoint), so a partial restore reads it from a few chunks instead of most of the
 * pack.
 */
import { CheckpointStore, type RelayoutResult, relayoutCheckpoint } from "../checkpoint/index.ts";
import { UsageError } from "../errors.ts";
import { PROFILE_SECONDS_MAX, PROFILE_WINDOW_DEFAULT_MS } from "../limits.ts";
import { defaultCheckpointName, type SaveOptions, type SaveResult, save } from "../save/index.ts";
import { killVm, stopVm } from "../vm/index.ts";
import {
  loadWorkingSet,
  refineWorkingSet,
  saveWorkingSet,
  type WorkingSet,
  type WorkingSetSource,
  workingSetFile,
  workingSetFromTrace,
} from "../wss/index.ts";
import type {
  FillReport,
  PostcopyRestoreResult,
  TraceWindowOptions,
  TraceWindowReport,
} from "./postcopy/index.ts";
import { restore, storedWorkingSet } from "./restore.ts";
import type { RestoredVm } from "./target.ts";

export interface LearnedWorkingSet {
  /** Distinct pages requested inside the trace window. */
  readonly tracedPages: number;
  /** The restore's trace window (when it closed, why), or null: a plain lazy restore's trace. */
  readonly window: TraceWindowReport | null;
  /** The refined working set now kept for the checkpoint. */
  readonly workingSet: WorkingSet;
  readonly file: string;
  /** The locality relayout that followed: chunks holding the working set before and after. */
  readonly relayout: RelayoutResult;
}

/** How long to trace. */
export interface TraceWindowChoice {
  /**
   * The window's bound, s (default PROFILE_WINDOW_DEFAULT_MS): it closes earlier once the
   * trace settles, unless `fixed`.
   */
  readonly seconds?: number;
  /** Trace exactly `seconds` (then required), without settling. */
  readonly fixed?: boolean;
}

export interface ProfileOptions extends TraceWindowChoice {
  readonly home: string;
  readonly checkpoint: string;
  readonly vmName?: string;
  /**
   * Gives the clone, once it runs, the kind of input a restored guest gets (its clients'
   * requests): what they make it touch is then traced too. Awaited with the fill; an error
   * fails the profile. Default: the clone runs on its own.
   */
  readonly drive?: (vm: RestoredVm) => Promise<void>;
}

export interface ProfileResult extends LearnedWorkingSet {
  readonly fill: FillReport;
}

/** A traced lazy restore of a clone that runs until its trace window closes, then is discarded. */
export async function profile(opts: ProfileOptions): Promise<ProfileResult> {
  const traceWindow = traceWindowOptions(opts);
  const vmName = opts.vmName ?? cloneName(opts.checkpoint);
  const restored = await restore({
    home: opts.home,
    checkpoint: opts.checkpoint,
    mode: "lazy",
    vmName,
    traceWindow,
  });
  try {
    const driven = opts.drive?.(restored.vm) ?? Promise.resolve();
    driven.catch(() => undefined); // reported by Promise.all, unless the fill failed first
    const [fill] = await Promise.all([restored.fill, driven]);
    return { ...(await learnFromTrace(opts.home, opts.checkpoint, fill)), fill };
  } finally {
    await killVm(opts.home, vmName);
  }
}

export interface ContinueResult {
  readonly saved: SaveResult;
  /** The VM, now a lazily restored clone of the checkpoint. */
  readonly restored: PostcopyRestoreResult;
  /** Settles when the fill is done and the traced working set is kept. */
  readonly learned: Promise<LearnedWorkingSet>;
}

/** Saves the VM, then resumes it as a traced lazy restore of the new checkpoint. */
export async function saveAndContinue(
  opts: Omit<SaveOptions, "after"> & { readonly trace?: TraceWindowChoice },
): Promise<ContinueResult> {
  const traceWindow = traceWindowOptions(opts.trace ?? {});
  const vmName = typeof opts.vm === "string" ? opts.vm : opts.vm.name;
  const name = opts.name ?? defaultCheckpointName(vmName);
  const saved = await save({ ...opts, name, after: "pause" });
  await stopVm(opts.home, opts.vm);
  const restored = await restore({
    home: opts.home,
    checkpoint: name,
    mode: "lazy",
    vmName,
    traceWindow,
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
  });
  const learned = restored.fill.then((fill) => learnFromTrace(opts.home, name, fill));
  return { saved, restored, learned };
}

/**
 * Turns a lazy restore's trace window into the checkpoint's (refined) working set. The window
 * is the restore's own (FillReport.traceWindow) unless `windowMs` is given; without either,
 * the whole trace.
 */
export async function learnFromTrace(
  home: string,
  checkpoint: string,
  fill: FillReport,
  windowMs?: number,
): Promise<LearnedWorkingSet> {
  const untilMs = windowMs ?? fill.traceWindow?.closedAtMs ?? Number.POSITIVE_INFINITY;
  const traced = workingSetFromTrace(fill.trace.filter((t) => t.tMs <= untilMs));

  const kept =
    (await loadWorkingSet(home, checkpoint, "union")) ??
    (await loadWorkingSet(home, checkpoint, "trace"));
  const workingSet = kept === null ? traced : refineWorkingSet(kept, traced);
  const saved = await saveWorkingSet(home, checkpoint, workingSet);
  const relayout = await relayoutCheckpoint(
    new CheckpointStore({ home }),
    checkpoint,
    workingSet.pages,
    { source: workingSet.source },
  );
  // The relayout gives the checkpoint a new identity and moves its working sets with it.
  const file = (await workingSetFile(home, checkpoint, workingSet.source)) ?? saved;
  return {
    tracedPages: traced.pages.length,
    window: fill.traceWindow,
    workingSet,
    file,
    relayout,
  };
}

/** A checkpoint rewritten by its kept working set (relayoutByWorkingSet). */
export interface RelaidOut {
  /** The kept working set it was laid out by. */
  readonly source: WorkingSetSource;
  readonly relayout: RelayoutResult;
}

/**
 * Rewrites the checkpoint with its kept working set packed first: the one a partial restore
 * would prefetch (`workingSetKind`, else the preferred one; storedWorkingSet). A checkpoint
 * without one is a UsageError.
 */
export async function relayoutByWorkingSet(opts: {
  readonly home: string;
  readonly checkpoint: string;
  readonly workingSetKind?: WorkingSetSource;
}): Promise<RelaidOut> {
  const ws = await storedWorkingSet(opts.home, opts.checkpoint, opts.workingSetKind);
  if (ws === null) {
    throw new UsageError(
      `Checkpoint "${opts.checkpoint}" has no working set to lay out by: profile it first`,
    );
  }
  const store = new CheckpointStore({ home: opts.home });
  const relayout = await relayoutCheckpoint(store, opts.checkpoint, ws.pages, {
    source: ws.source,
  });
  return { source: ws.source, relayout };
}

function traceWindowOptions(choice: TraceWindowChoice): TraceWindowOptions {
  const { seconds, fixed = false } = choice;
  if (seconds === undefined) {
    if (fixed)
      throw new UsageError("Cannot trace a fixed window without its length: give --seconds");
    return { maxMs: PROFILE_WINDOW_DEFAULT_MS };
  }
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > PROFILE_SECONDS_MAX) {
    throw new UsageError(
      `Cannot trace for ${seconds} s: give a number of seconds in (0, ${PROFILE_SECONDS_MAX}]`,
    );
  }
  return { maxMs: Math.round(seconds * 1000), fixed };
}

/** A VM name (no "@") for a checkpoint's throw-away profiling clone. */
function cloneName(checkpoint: string): string {
  return `profile-${checkpoint.replace(/[^A-Za-z0-9._-]/g, "-")}`.slice(0, 64);
}
