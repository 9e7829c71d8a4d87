/**
 * Working sets from tracing (VEE'11 "memory tracing"): a lazy restore records every page the
 * guest asks for; the requests of its first seconds are the pages a restore should prefetch.
 *
 * - profile(): a traced lazy restore of a throw-away clone, discarded afterwards;
 * - saveAndContinue(): save, then the VM goes on as a lazily restored clone of its own
 *   checkpoint, so the first seconds after the save point give the working set for free.
 *
 * Background fill is held back for the trace window, so the guest's own requests, not the
 * fill order, decide what is traced. Each new trace refines the kept working set (union at
 * earliest first access, bounded: REAP-style), and the checkpoint is then rewritten with that
 * working set packed first (Halite locality layout, relayoutCheckpoint), so a partial restore
 * reads it from a few chunks instead of most of the pack.
 */
import { CheckpointStore, type RelayoutResult, relayoutCheckpoint } from "../checkpoint/index.ts";
import { UsageError } from "../errors.ts";
import { PROFILE_SECONDS_MAX } from "../limits.ts";
import { type SaveOptions, type SaveResult, save } from "../save/index.ts";
import { killVm, stopVm } from "../vm/index.ts";
import {
  loadWorkingSet,
  refineWorkingSet,
  saveWorkingSet,
  type WorkingSet,
  workingSetFromTrace,
} from "../wss/index.ts";
import type { FillReport, PostcopyRestoreResult } from "./postcopy/index.ts";
import { restore } from "./restore.ts";

export interface LearnedWorkingSet {
  /** Distinct pages requested inside the trace window. */
  readonly tracedPages: number;
  /** The refined working set now kept for the checkpoint. */
  readonly workingSet: WorkingSet;
  readonly file: string;
  /** The locality relayout that followed: chunks holding the working set before and after. */
  readonly relayout: RelayoutResult;
}

export interface ProfileOptions {
  readonly home: string;
  readonly checkpoint: string;
  /** How long the clone runs traced before its requests stop counting. */
  readonly seconds: number;
  readonly vmName?: string;
}

export interface ProfileResult extends LearnedWorkingSet {
  readonly fill: FillReport;
}

/** A traced lazy restore of a clone that runs `seconds` and is then discarded. */
export async function profile(opts: ProfileOptions): Promise<ProfileResult> {
  const windowMs = traceWindowMs(opts.seconds);
  const vmName = opts.vmName ?? cloneName(opts.checkpoint);
  const restored = await restore({
    home: opts.home,
    checkpoint: opts.checkpoint,
    mode: "lazy",
    vmName,
    backgroundDelayMs: windowMs,
  });
  try {
    const fill = await restored.fill;
    return { ...(await learnFromTrace(opts.home, opts.checkpoint, fill, windowMs)), fill };
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
  opts: Omit<SaveOptions, "after"> & { readonly traceSeconds: number },
): Promise<ContinueResult> {
  const windowMs = traceWindowMs(opts.traceSeconds);
  const vmName = typeof opts.vm === "string" ? opts.vm : opts.vm.name;
  const saved = await save({ ...opts, after: "pause" });
  await stopVm(opts.home, opts.vm);
  const restored = await restore({
    home: opts.home,
    checkpoint: opts.name,
    mode: "lazy",
    vmName,
    backgroundDelayMs: windowMs,
  });
  const learned = restored.fill.then((fill) =>
    learnFromTrace(opts.home, opts.name, fill, windowMs),
  );
  return { saved, restored, learned };
}

/** Turns a lazy restore's trace window into the checkpoint's (refined) working set. */
export async function learnFromTrace(
  home: string,
  checkpoint: string,
  fill: FillReport,
  windowMs: number,
): Promise<LearnedWorkingSet> {
  const traced = workingSetFromTrace(fill.trace.filter((t) => t.tMs <= windowMs));
  const kept =
    (await loadWorkingSet(home, checkpoint, "union")) ??
    (await loadWorkingSet(home, checkpoint, "trace"));
  const workingSet = kept === null ? traced : refineWorkingSet(kept, traced);
  const file = await saveWorkingSet(home, checkpoint, workingSet);
  const relayout = await relayoutCheckpoint(
    new CheckpointStore({ home }),
    checkpoint,
    workingSet.pages,
    { source: workingSet.source },
  );
  return { tracedPages: traced.pages.length, workingSet, file, relayout };
}

function traceWindowMs(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > PROFILE_SECONDS_MAX) {
    throw new UsageError(
      `Cannot trace for ${seconds} s: give a number of seconds in (0, ${PROFILE_SECONDS_MAX}]`,
    );
  }
  return Math.round(seconds * 1000);
}

/** A VM name (no "@") for a checkpoint's throw-away profiling clone. */
function cloneName(checkpoint: string): string {
  return `profile-${checkpoint.replace(/[^A-Za-z0-9._-]/g, "-")}`.slice(0, 64);
}
