/**
 * Which layers are in use, and removing the rest. A layer is kept while anything can reach
 * it, directly or through the backing links of the layers above it:
 *
 * - a checkpoint's manifest names it (the caller passes those ids: src/checkpoint reads them);
 * - a VM runs on it: `disk-layers.json` in its state directory (store/layout.ts) (its hold file, written by save and
 *   restore into the VM's state directory) names the overlay each drive writes; the state
 *   directory, and so the hold, goes away when the VM is stopped;
 * - a live process is creating it (`pending/<pid>-<id>`, see LayerStore).
 *
 * Order matters against a concurrent save or restore, which writes pending marker → files →
 * hold → removes the marker: gc lists the files first, then markers, then holds, so a layer it
 * saw is always covered by one of the two when it looks.
 */
import { readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { LAYER_RECORD_BYTES_MAX } from "../limits.ts";
import { vmDir, vmsDir } from "../store/layout.ts";
import { errorCode, processAlive } from "../util/index.ts";
import { DiskLayerError } from "./layer-error.ts";
import { LAYER_ID_PATTERN, LayerStore } from "./layer-store.ts";

/** The hold file's name inside a VM's state directory. */
export const HOLD_FILE = "disk-layers.json";
const LAYER_FILE = /^([0-9a-f]{16})\.(qcow2|raw|json|index)$/;
const PENDING = /^([0-9]{1,10})-([0-9a-f]{16})$/;
const TEMP = /^\.[0-9a-f]{16}\.(json|index)\.([0-9]{1,10})\.tmp$/;

/** One drive of a VM running on snapwake layers: the overlay it writes. */
export interface DriveHold {
  readonly drive: number;
  readonly active: string;
}

/** Records which overlays the VM in `stateDir` writes (atomically replaces the hold). */
export async function writeHold(stateDir: string, drives: readonly DriveHold[]): Promise<void> {
  const temp = join(stateDir, `.${HOLD_FILE}.tmp`);
  await writeFile(temp, `${JSON.stringify({ drives }, null, 2)}\n`);
  await rename(temp, join(stateDir, HOLD_FILE));
}

/** The VM's hold, or [] when it has none (it runs on no snapwake layer yet). */
export async function readHold(stateDir: string): Promise<DriveHold[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(stateDir, HOLD_FILE));
  } catch (error) {
    if (errorCode(error) === "ENOENT") return [];
    throw error;
  }
  const bad = () => new DiskLayerError(join(stateDir, HOLD_FILE), "the hold file is malformed");
  if (bytes.byteLength > LAYER_RECORD_BYTES_MAX) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new DiskLayerError(join(stateDir, HOLD_FILE), "the hold file is not JSON", {
      cause: error,
    });
  }
  const drives = (v as { drives?: unknown } | null)?.drives;
  if (!Array.isArray(drives)) throw bad();
  return drives.map((d: unknown) => {
    const o = d as { drive?: unknown; active?: unknown } | null;
    if (!Number.isSafeInteger(o?.drive) || typeof o?.active !== "string") throw bad();
    if (!LAYER_ID_PATTERN.test(o.active)) throw bad();
    return { drive: o.drive as number, active: o.active };
  });
}

/**
 * Removes every layer nothing reaches (see the module comment); `roots` are the ids the
 * checkpoints' manifests name. Returns the ids removed.
 */
export async function collectLayers(home: string, roots: Iterable<string>): Promise<string[]> {
  const store = new LayerStore(home);
  const present = new Set<string>();
  for (const name of await entries(store.dir)) {
    const m = LAYER_FILE.exec(name);
    if (m?.[1] !== undefined) present.add(m[1]);
    const t = TEMP.exec(name);
    if (t !== null && !processAlive(Number(t[2]))) await rm(join(store.dir, name), { force: true });
  }
  if (present.size === 0) return [];
  const keep = new Set<string>(roots);
  for (const name of await entries(store.pendingDir)) {
    const m = PENDING.exec(name);
    if (m === null || m[2] === undefined) continue;
    if (processAlive(Number(m[1]))) keep.add(m[2]);
    else await rm(join(store.pendingDir, name), { force: true });
  }
  for (const vm of await entries(vmsDir(home))) {
    const holds = await readHold(vmDir(home, vm)).catch(() => null);
    if (holds === null) return []; // a hold we cannot read might protect anything: keep all
    for (const h of holds) keep.add(h.active);
  }
  await addBackingLayers(store, keep);
  const removed: string[] = [];
  for (const id of present) {
    if (keep.has(id)) continue;
    for (const ext of ["qcow2", "raw", "index", "json"]) {
      await rm(join(store.dir, `${id}.${ext}`), { force: true });
    }
    removed.push(id);
  }
  return removed.sort();
}

/** Adds to `keep` every layer below a kept one (backing links from the records). */
async function addBackingLayers(store: LayerStore, keep: Set<string>): Promise<void> {
  const todo = [...keep];
  for (let id = todo.pop(); id !== undefined; id = todo.pop()) {
    if (!LAYER_ID_PATTERN.test(id)) continue;
    const side = await store.sidecar(id).catch(() => null);
    const below = side?.backing ?? null;
    if (below !== null && !keep.has(below)) {
      keep.add(below);
      todo.push(below);
    }
  }
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return [];
    throw error;
  }
}
