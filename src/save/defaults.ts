/**
 * The defaults of a save, the library's and the CLI's alike: what the VM does once saved and
 * the name of a checkpoint that was given none. This module imports nothing, so the CLI's
 * command table can list the choices at start.
 */

/** What the source VM does after a successful save. */
export const AFTER_SAVE = ["continue", "pause", "stop"] as const;

export type AfterSave = (typeof AFTER_SAVE)[number];

/** The VM keeps running. */
export const DEFAULT_AFTER_SAVE: AfterSave = "continue";

/** `VM@<UTC time>` to the second, with the colons a file name would not like as dashes. */
export function defaultCheckpointName(vm: string, at: Date = new Date()): string {
  return `${vm}@${at.toISOString().replace(/[:]/g, "-").slice(0, 19)}`;
}
