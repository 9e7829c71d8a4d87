/**
 * Which checkpoint a save shares its pages with (format 1.2): the parent asked for, else the
 * VM's origin while it is still listed; with `wholeStore`, every checkpoint of the store.
 */
import { type CheckpointStore, type SharedPages, shareStore } from "../checkpoint/index.ts";
import { InvalidCheckpointError } from "../errors.ts";
import { type ManagedVm, readOrigin } from "../vm/index.ts";
import type { SaveOptions } from "./save.ts";

/** The pages this save shares (format 1.2): its parent's, and with `wholeStore` the store's. */
export async function indexShared(
  store: CheckpointStore,
  opts: SaveOptions,
  vm: ManagedVm,
): Promise<SharedPages | null> {
  const parent = await resolveParent(store, opts, vm);
  const wholeStore = opts.wholeStore === true;
  if (parent === null && !wholeStore) return null;
  const phase = `indexing ${parent === null ? "" : `parent ${parent}`}${wholeStore ? " and the store" : ""}`;
  opts.onProgress?.({ phase, doneBytes: 0, totalBytes: null });
  return shareStore(store, parent, { wholeStore }).catch((error: unknown) => {
    if (!(error instanceof InvalidCheckpointError)) throw error;
    throw new InvalidCheckpointError(
      error.checkpoint,
      `${error.reason}; this save would share its pages: save with --full (parent: null), ` +
        "and rm it",
      { cause: error },
    );
  });
}

/** The parent a save shares pages with: the one asked for, else the VM's origin if listed. */
async function resolveParent(
  store: CheckpointStore,
  opts: SaveOptions,
  vm: ManagedVm,
): Promise<string | null> {
  if (opts.parent === null) return null;
  if (opts.parent !== undefined) {
    await store.stat(opts.parent); // NotFoundError / InvalidCheckpointError name it
    return opts.parent;
  }
  const origin = await readOrigin(vm.stateDir);
  if (origin === null) return null;
  const listed = await store.stat(origin.checkpoint).then(
    () => true,
    () => false, // removed or damaged since: a full checkpoint instead
  );
  return listed ? origin.checkpoint : null;
}
