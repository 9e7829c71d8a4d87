/** Restore entry point: picks the mode. Only eager exists so far; lazy and partial come next. */
import type { ProgressListener } from "../progress.ts";
import { type EagerRestoreResult, restoreEager } from "./eager.ts";

export type RestoreMode = "eager";

export interface RestoreOptions {
  readonly home: string;
  readonly checkpoint: string;
  readonly mode?: RestoreMode;
  /** Name of the new managed VM; default: the saved VM's name. */
  readonly vmName?: string;
  readonly onProgress?: ProgressListener;
}

export type RestoreResult = EagerRestoreResult;

export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const mode = opts.mode ?? "eager";
  switch (mode) {
    case "eager":
      return restoreEager(opts);
    default:
      throw new Error(`unreachable restore mode ${String(mode satisfies never)}`);
  }
}
