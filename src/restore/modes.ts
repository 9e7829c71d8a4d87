/**
 * The restore modes, listed once: the library's RestoreMode, the CLI's `--mode` choices and
 * the detached page server all derive from this list. This module imports nothing, so the
 * CLI's command table can read it at start.
 */

/** eager, mapped, lazy, partial and auto, as restore.ts documents them. */
export const RESTORE_MODES = ["eager", "mapped", "lazy", "partial", "auto"] as const;

export type RestoreMode = (typeof RESTORE_MODES)[number];

/** The mode of a restore that names none: the library's and the CLI's. */
export const DEFAULT_RESTORE_MODE: RestoreMode = "auto";
