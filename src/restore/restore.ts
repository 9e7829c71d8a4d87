/**
 * Restore entry point: picks the mode. eager replays the whole checkpoint before the guest
 * runs; lazy and partial make snapwake QEMU's postcopy source (src/restore/postcopy); auto is
 * partial when a working set is given, else lazy.
 */
import { UsageError } from "../errors.ts";
import { type EagerRestoreResult, restoreEager } from "./eager.ts";
import {
  type PostcopyRestoreOptions,
  type PostcopyRestoreResult,
  restorePostcopy,
} from "./postcopy/index.ts";

export type RestoreMode = "eager" | "lazy" | "partial" | "auto";

/**
 * The postcopy options (documented on PostcopyRestoreOptions) with any mode; eager uses
 * home, checkpoint, vmName and onProgress. Default mode "eager".
 */
export type RestoreOptions = Omit<PostcopyRestoreOptions, "mode"> & {
  readonly mode?: RestoreMode;
};

/** eager: done when it returns. lazy/partial: the guest runs; `fill` settles when all is in. */
export type RestoreResult = EagerRestoreResult | PostcopyRestoreResult;

/** Eager (the default mode) resolves with the eager result; other modes with a `fill`. */
export function restore(
  opts: RestoreOptions & { readonly mode?: "eager" },
): Promise<EagerRestoreResult>;
export function restore(
  opts: RestoreOptions & { readonly mode: "lazy" | "partial" | "auto" },
): Promise<PostcopyRestoreResult>;
export function restore(opts: RestoreOptions): Promise<RestoreResult>;
export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const mode = opts.mode ?? "eager";
  switch (mode) {
    case "eager":
      if (opts.workingSet !== undefined)
        throw new UsageError("Cannot use a working set in an eager restore: every page is sent");
      return restoreEager(opts);
    case "lazy":
    case "partial":
      return restorePostcopy({ ...opts, mode });
    case "auto": {
      const partial = opts.workingSet !== undefined && opts.workingSet.length > 0;
      return restorePostcopy({ ...opts, mode: partial ? "partial" : "lazy" });
    }
    default:
      throw new Error(`unreachable restore mode ${String(mode satisfies never)}`);
  }
}
