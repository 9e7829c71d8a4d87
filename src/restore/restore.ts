/**
 * Restore entry point, shared by the library and the CLI: picks the mode and its working set,
 * holds the store lock, and cancels on the caller's AbortSignal. eager replays the whole
 * checkpoint before the guest runs; lazy and partial make snapwake QEMU's postcopy source
 * (src/restore/postcopy); auto (the default) is partial when a working set is given or stored
 * for the checkpoint, else lazy.
 *
 * Invariants: the checkpoint is held for reading (store/lock.ts) until an eager restore
 * returns or a postcopy fill settles, so `rm` cannot take it from under the page server; an
 * abort stops QEMU (its state directory goes with it) and rejects with the signal's reason.
 */
import { abortError, throwIfAborted } from "../abort.ts";
import { UsageError } from "../errors.ts";
import { StoreLock } from "../store/lock.ts";
import { loadWorkingSet } from "../wss/store.ts";
import type { WorkingSetSource } from "../wss/working-set.ts";
import { type EagerRestoreResult, restoreEager } from "./eager.ts";
import {
  type PostcopyRestoreOptions,
  type PostcopyRestoreResult,
  restorePostcopy,
} from "./postcopy/index.ts";

export type RestoreMode = "eager" | "lazy" | "partial" | "auto";

/** The mode of a restore that names none: the library's and the CLI's. */
export const DEFAULT_RESTORE_MODE: RestoreMode = "auto";

/**
 * The postcopy options (documented on PostcopyRestoreOptions) with any mode; eager uses
 * home, checkpoint, vmName, qemu, onProgress and signal. Default mode "auto". Partial and
 * auto without `workingSet` use the checkpoint's stored working set (src/wss).
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
   * preference order). Refused with eager and lazy, and when the checkpoint has none of it.
   */
  readonly workingSetKind?: WorkingSetSource;
};

/** eager: done when it returns. lazy/partial: the guest runs; `fill` settles when all is in. */
export type RestoreResult = EagerRestoreResult | PostcopyRestoreResult;

/** Eager resolves with the eager result; other modes (auto, the default) with a `fill`. */
export function restore(
  opts: RestoreOptions & { readonly mode: "eager" },
): Promise<EagerRestoreResult>;
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
  if (opts.workingSetKind !== undefined && (mode === "eager" || mode === "lazy")) {
    throw new UsageError(
      `A ${opts.workingSetKind} working set prefetches in partial and auto restores, not ${mode}`,
    );
  }
  switch (mode) {
    case "eager":
      if (opts.workingSet !== undefined)
        throw new UsageError("Cannot use a working set in an eager restore: every page is sent");
      if (opts.launched !== undefined)
        throw new UsageError("An eager restore starts its own QEMU: `launched` is for postcopy");
      return restoreEager(opts);
    case "lazy":
      return restorePostcopy({ ...opts, mode });
    case "partial": {
      const workingSet = opts.workingSet ?? (await storedWorkingSet(opts));
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
      const workingSet = opts.workingSet ?? (await storedWorkingSet(opts)) ?? [];
      if (workingSet.length === 0) return restorePostcopy({ ...opts, mode: "lazy" });
      return restorePostcopy({ ...opts, mode: "partial", workingSet });
    }
    default:
      throw new Error(`unreachable restore mode ${String(mode satisfies never)}`);
  }
}

/** The checkpoint's stored working set of the kind asked for, else its preferred one, or null. */
async function storedWorkingSet(opts: RestoreOptions) {
  const kind = opts.workingSetKind;
  const ws = await loadWorkingSet(opts.home, opts.checkpoint, kind);
  if (ws === null && kind !== undefined) {
    throw new UsageError(
      `Checkpoint "${opts.checkpoint}" has no ${kind} working set: \`snapwake inspect\` lists ` +
        "the ones it has",
    );
  }
  return ws === null ? null : ws.pages;
}
