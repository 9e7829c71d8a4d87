/**
 * Restore entry point, shared by the library and the CLI: picks the mode and its working set,
 * holds the store lock, and cancels on the caller's AbortSignal. eager replays the whole
 * checkpoint before the guest runs; mapped maps its guest RAM from a verified image of it
 * (mapped.ts, ADR 0032); lazy and partial make snapwake QEMU's postcopy source
 * (src/restore/postcopy); auto (the default) is partial when a working set is given or stored
 * for the checkpoint, else lazy.
 *
 * Invariants: the checkpoint is held for reading (store/lock.ts) until an eager or mapped
 * restore returns or a postcopy fill settles, so `rm` cannot take it from under the page server; an
 * abort stops QEMU (its state directory goes with it) and rejects with the signal's reason.
 */
import { abortError, throwIfAborted } from "../abort.ts";
import { UsageError } from "../errors.ts";
import { StoreLock } from "../store/lock.ts";
import { assertNever } from "../util/assert-never.ts";
import { loadWorkingSet } from "../wss/store.ts";
import type { WorkingSet, WorkingSetSource } from "../wss/working-set.ts";
import { type EagerRestoreResult, restoreEager } from "./eager.ts";
import { type MappedRestoreResult, restoreMapped } from "./mapped.ts";
import { DEFAULT_RESTORE_MODE, type RestoreMode } from "./modes.ts";
import {
  type PostcopyRestoreOptions,
  type PostcopyRestoreResult,
  restorePostcopy,
} from "./postcopy/index.ts";

export { DEFAULT_RESTORE_MODE, RESTORE_MODES, type RestoreMode } from "./modes.ts";

/**
 * The postcopy options (documented on PostcopyRestoreOptions) with any mode; eager and mapped
 * use home, checkpoint, vmName, qemu, resetAccessedBits, onProgress and signal. Default mode
 * "auto". Partial and auto without `workingSet` use the checkpoint's stored working set
 * (src/wss).
 */
export type RestoreOptions = Omit<PostcopyRestoreOptions, "mode"> & {
  readonly mode?: RestoreMode;
  /**
   * Cancels the restore: QEMU is stopped, its VM state goes, and the restore rejects with the
   * signal's reason. After a postcopy restore returned, it still stops the guest until the
   * fill is done (the guest cannot run without its page server).
   */
  readonly signal?: AbortSignal;
  /**
   * Which stored estimate partial and auto prefetch (default: the best kept, wss/store.ts's
   * preference order). Refused with eager, mapped and lazy, and when the checkpoint has none.
   */
  readonly workingSetKind?: WorkingSetSource;
  /** As EagerRestoreOptions.writeGuestRam; refused with the other modes. */
  readonly writeGuestRam?: boolean;
  /** As EagerRestoreOptions.ramDir (ADR 0035); refused with the other modes. */
  readonly ramDir?: string;
};

/**
 * eager, mapped: done when it returns. lazy/partial: the guest runs; `fill` settles when all
 * is in.
 */
export type RestoreResult = EagerRestoreResult | MappedRestoreResult | PostcopyRestoreResult;

/** Eager resolves with the eager result; other modes (auto, the default) with a `fill`. */
export function restore(
  opts: RestoreOptions & { readonly mode: "eager" },
): Promise<EagerRestoreResult>;
export function restore(
  opts: RestoreOptions & { readonly mode: "mapped" },
): Promise<MappedRestoreResult>;
export function restore(
  opts: RestoreOptions & { readonly mode?: "lazy" | "partial" | "auto" },
): Promise<PostcopyRestoreResult>;
export function restore(opts: RestoreOptions): Promise<RestoreResult>;
export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  throwIfAborted(opts.signal);
  const lock = await StoreLock.acquire(opts.home, {
    command: "restore",
    mode: "shared",
    uses: [{ checkpoint: opts.checkpoint, access: "read" }],
  });
  // QEMU is killed through `stop`, which follows the caller's signal only while the restore
  // needs it: until an eager restore returns, or a postcopy fill settles. A signal that came
  // while the lock was being taken counts too.
  const stop = new AbortController();
  const follow = () => stop.abort(opts.signal?.reason);
  opts.signal?.addEventListener("abort", follow, { once: true });
  if (opts.signal?.aborted) follow();
  const done = async () => {
    opts.signal?.removeEventListener("abort", follow);
    await lock.release();
  };
  let result: RestoreResult;
  try {
    result = await restoreIn({ ...opts, signal: stop.signal });
  } catch (error) {
    await done();
    throw opts.signal?.aborted ? abortError(opts.signal) : error;
  }
  if (!("fill" in result)) {
    await done();
    return result;
  }
  const fill = result.fill.then(
    async (report) => {
      await done();
      return report;
    },
    async (error: unknown) => {
      await done();
      throw opts.signal?.aborted ? abortError(opts.signal) : error;
    },
  );
  fill.catch(() => undefined); // the caller may never look; the rejection is still theirs
  return { ...result, fill };
}

async function restoreIn(opts: RestoreOptions): Promise<RestoreResult> {
  const mode = opts.mode ?? DEFAULT_RESTORE_MODE;
  if (opts.workingSetKind !== undefined && ["eager", "mapped", "lazy"].includes(mode)) {
    throw new UsageError(
      `A ${opts.workingSetKind} working set prefetches in partial and auto restores, not ${mode}`,
    );
  }
  if (opts.writeGuestRam !== undefined && mode !== "eager") {
    throw new UsageError(`writeGuestRam is an eager restore's choice, not ${mode}'s`);
  }
  if (opts.ramDir !== undefined && mode !== "eager") {
    throw new UsageError(
      `A RAM directory holds the RAM an eager restore writes; a ${mode} restore does not use one`,
    );
  }
  switch (mode) {
    case "eager":
    case "mapped":
      if (opts.workingSet !== undefined)
        throw new UsageError(`Cannot use a working set in an ${mode} restore: no page is lazy`);
      if (opts.launched !== undefined)
        throw new UsageError(
          `An ${mode} restore starts its own QEMU: \`launched\` is for postcopy`,
        );
      return mode === "eager" ? restoreEager(opts) : restoreMapped(opts);
    case "lazy":
      return restorePostcopy({ ...opts, mode });
    case "partial": {
      const workingSet = opts.workingSet ?? (await storedPages(opts));
      if (workingSet === null) {
        throw new UsageError(
          `Checkpoint "${opts.checkpoint}" has no working set to prefetch by default: profile ` +
            "it (snapwake profile, or save with --continue), name a kept one (--working-set; " +
            "`snapwake inspect` lists them), or restore with mode lazy",
        );
      }
      return restorePostcopy({ ...opts, mode, workingSet });
    }
    case "auto": {
      const workingSet = opts.workingSet ?? (await storedPages(opts)) ?? [];
      if (workingSet.length === 0) return restorePostcopy({ ...opts, mode: "lazy" });
      return restorePostcopy({ ...opts, mode: "partial", workingSet });
    }
    default:
      return assertNever(mode, "restore mode");
  }
}

async function storedPages(opts: RestoreOptions) {
  return (await storedWorkingSet(opts.home, opts.checkpoint, opts.workingSetKind))?.pages ?? null;
}

/**
 * The stored working set a partial or auto restore prefetches (and `relayout` lays out by):
 * the checkpoint's one of `kind`, else its preferred one (wss/store.ts), or null when it has
 * none. A `kind` the checkpoint lacks is a UsageError.
 */
export async function storedWorkingSet(
  home: string,
  checkpoint: string,
  kind?: WorkingSetSource,
): Promise<WorkingSet | null> {
  const ws = await loadWorkingSet(home, checkpoint, kind);
  if (ws === null && kind !== undefined) {
    throw new UsageError(
      `Checkpoint "${checkpoint}" has no ${kind} working set: \`snapwake inspect\` lists ` +
        "the ones it has",
    );
  }
  return ws;
}
