/**
 * The one qemu-img call snapwake makes: creating an empty qcow2 overlay over a frozen layer.
 * `-u` (unsafe) skips opening the backing chain, so it never takes image locks that a running
 * QEMU holds, and the backing path may be a layer that is only being linked into place.
 */
import { execFile } from "node:child_process";
import { QEMU_IMG_TIMEOUT_MS } from "../limits.ts";
import { DiskLayerError } from "./layer-error.ts";
import type { LayerFormat } from "./layer-file.ts";

/** qemu-img from PATH; `npm run setup` installs qemu-utils. */
export const QEMU_IMG_BINARY = "qemu-img";

export interface OverlayOptions {
  /** The new overlay's path (must not exist). */
  readonly path: string;
  /** Absolute path written as the overlay's backing file. */
  readonly backingPath: string;
  readonly backingFormat: LayerFormat;
  /** Guest-visible size: the backing layer's virtual size. */
  readonly virtualBytes: number;
}

export function createOverlay(o: OverlayOptions): Promise<void> {
  const args = ["create", "-q", "-f", "qcow2", "-u", "-b", o.backingPath, "-F", o.backingFormat];
  args.push(o.path, String(o.virtualBytes));
  return new Promise((resolve, reject) => {
    execFile(QEMU_IMG_BINARY, args, { timeout: QEMU_IMG_TIMEOUT_MS }, (error, _out, stderr) => {
      if (error === null) return resolve();
      const why = stderr.trim() || error.message;
      reject(
        new DiskLayerError(o.path, `qemu-img cannot create the overlay: ${why}`, { cause: error }),
      );
    });
  });
}
