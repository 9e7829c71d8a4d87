/** Checkpoint names: they become directory names, so they are checked before any path is built. */
import { UsageError } from "../../errors.ts";

/** Letters, digits and `._@-`, starting with a letter or digit, at most 128 characters. */
export const CHECKPOINT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

/** Throws UsageError unless `name` is a valid checkpoint name. */
export function checkCheckpointName(name: string): void {
  if (typeof name !== "string" || !CHECKPOINT_NAME_PATTERN.test(name)) {
    throw new UsageError(
      `Cannot use checkpoint name ${JSON.stringify(name)}: ` +
        "use 1 to 128 letters, digits and ._@- starting with a letter or digit",
    );
  }
}
