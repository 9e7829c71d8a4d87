/**
 * The one operating error of src/disk: a layer file that cannot be used (missing, changed
 * since it was frozen, malformed, or using a qcow2 feature snapwake does not read). Callers
 * that know the checkpoint wrap it in InvalidCheckpointError with `{ cause }`.
 */
export class DiskLayerError extends Error {
  override name = "DiskLayerError";
  /** The layer's file (or id when it has none yet). */
  readonly layer: string;
  readonly reason: string;
  constructor(layer: string, reason: string, options?: ErrorOptions) {
    super(`Cannot use disk layer ${layer}: ${reason}`, options);
    this.layer = layer;
    this.reason = reason;
  }
}
