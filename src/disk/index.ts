/**
 * Public surface of src/disk: frozen disk layers (qcow2 or raw) in `<home>/layers/`, their
 * block indexes, and finding guest pages that equal disk blocks (docs/adr/0006).
 * Knows nothing of QEMU processes or checkpoints; src/save freezes, src/checkpoint references.
 */
export { BlockIndex } from "./block-index.ts";
export { type DiskCandidate, DiskDuplicates } from "./disk-duplicates.ts";
export { DiskLayerError } from "./layer-error.ts";
export { type BlockPlace, LayerFile, type LayerFormat, type LayerIdentity } from "./layer-file.ts";
export { collectLayers, type DriveHold, HOLD_FILE, readHold, writeHold } from "./layer-gc.ts";
export { fileOf, LAYER_ID_PATTERN, type LayerRecord, LayerStore } from "./layer-store.ts";
