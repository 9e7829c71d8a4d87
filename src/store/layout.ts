/**
 * The store layout: every path under `<home>` is spelled here and nowhere else, so the
 * checkpoint store, the disk layers, the VM state directories, the caches, the working sets,
 * the restore records and the store lock cannot disagree about where things are.
 *
 *   <home>/checkpoints/<name>/               complete checkpoints: the only thing listed
 *   <home>/tmp/<pid>-<16 hex>[.removing|…]   writes, removals and replacements in progress
 *   <home>/layers/<id>.{qcow2,raw,json,index} disk layers; pending/<pid>-<id> while created
 *   <home>/vms/<vm>/                         a managed VM's state directory (vm/state-dir.ts)
 *   <home>/cache/digests/<pack id>           page digests per pack (never trusted)
 *   <home>/cache/qemu/<64 hex>.json          machine types per QEMU install (vm/machine-types.ts)
 *   <home>/cache/ram/<name>/{image,sums}     a mapped restore's RAM image (restore/ram-image.ts)
 *   <home>/wss/<name>/<manifest sha256>/     working sets of exactly that checkpoint
 *   <home>/wss/<name>/page-tables.json       page-table pages (bound by the index hash)
 *   <home>/restores/<name>/                  restore records and the page servers' logs
 *   <home>/locks/                            the store lock (store/lock.ts, ADR 0009)
 *
 * Checkpoint and VM names are validated by their owners (checkpoint/format/names.ts, vm/spec.ts)
 * before a path is built from them; as a last guard a name that could leave its folder is
 * refused here too. Identities are 64 lowercase hex digits, checked here.
 */
import { join } from "node:path";

/** The manifest's file name in a checkpoint directory (docs/format.md §1; format.ts FileName). */
export const MANIFEST_FILE = "manifest";

/** A checkpoint's identity: the SHA-256 of its manifest file, as 64 lowercase hex digits. */
export const IDENTITY_PATTERN = /^[0-9a-f]{64}$/;

export function checkpointsDir(home: string): string {
  return join(home, "checkpoints");
}

/** Directory of a listed checkpoint; `name` must have been validated. */
export function checkpointDir(home: string, name: string): string {
  return join(checkpointsDir(home), segment(name));
}

export function manifestFile(home: string, name: string): string {
  return join(checkpointDir(home, name), MANIFEST_FILE);
}

export function tempDir(home: string): string {
  return join(home, "tmp");
}

export function layersDir(home: string): string {
  return join(home, "layers");
}

export function vmsDir(home: string): string {
  return join(home, "vms");
}

export function vmDir(home: string, vm: string): string {
  return join(vmsDir(home), segment(vm));
}

export function digestCacheDir(home: string): string {
  return join(home, "cache", "digests");
}

/** Where the machine types of QEMU installs are cached, one file per install. */
export function machineTypesCacheDir(home: string): string {
  return join(home, "cache", "qemu");
}

/** The cache file of the QEMU install whose location hashes to `key` (64 lowercase hex). */
export function machineTypesCacheFile(home: string, key: string): string {
  if (!IDENTITY_PATTERN.test(key))
    throw new RangeError(`not a QEMU install key: ${JSON.stringify(key)}`);
  return join(machineTypesCacheDir(home), `${key}.json`);
}

/** Where working sets are kept, one folder per checkpoint name. */
export function workingSetsRoot(home: string): string {
  return join(home, "wss");
}

/** Everything kept about checkpoint `name` outside it: removed with it. */
export function workingSetsDir(home: string, name: string): string {
  return join(workingSetsRoot(home), segment(name));
}

/** The working sets of the checkpoint named `name` whose manifest hashes to `identity`. */
export function workingSetDir(home: string, name: string, identity: string): string {
  if (!IDENTITY_PATTERN.test(identity))
    throw new RangeError(`not a checkpoint identity: ${JSON.stringify(identity)}`);
  return join(workingSetsDir(home, name), identity);
}

/** Where mapped restores keep RAM images, one folder per checkpoint name. */
export function ramImagesRoot(home: string): string {
  return join(home, "cache", "ram");
}

/** The RAM image of checkpoint `name` (its `image` and `sums` files): removed with it. */
export function ramImageDir(home: string, name: string): string {
  return join(ramImagesRoot(home), segment(name));
}

/** Where restore records are kept, one folder per checkpoint name. */
export function restoresRoot(home: string): string {
  return join(home, "restores");
}

export function restoresDir(home: string, name: string): string {
  return join(restoresRoot(home), segment(name));
}

export function locksDir(home: string): string {
  return join(home, "locks");
}

/** `name` when it is one path segment that stays in its folder; else a RangeError. */
function segment(name: string): string {
  if (name === "" || name.includes("/") || name.includes("\0") || name.startsWith("."))
    throw new RangeError(`not a name that stays in its folder: ${JSON.stringify(name)}`);
  return name;
}
