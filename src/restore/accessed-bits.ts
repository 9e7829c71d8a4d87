/**
 * The restore side of the accessed-bit estimator (docs/accessed-bits.md): every restore mode
 * sends the page-table pages the checkpoint's save-time walk proved with their Accessed bits
 * cleared, so the restored VM's next save reads "accessed since this restore".
 */
import type { CheckpointReader } from "../checkpoint/index.ts";
import { AccessedBitsReset, accessedBitsResetFor } from "../wss/index.ts";

/** The accessed-bit reset a restore applies (an empty one when turned off). */
export function resetFor(
  opts: {
    readonly home: string;
    readonly checkpoint: string;
    readonly resetAccessedBits?: boolean;
  },
  reader: CheckpointReader,
): Promise<AccessedBitsReset> {
  if (opts.resetAccessedBits === false) return Promise.resolve(new AccessedBitsReset(null));
  return accessedBitsResetFor(opts.home, opts.checkpoint, reader.manifest.index.sha256);
}
