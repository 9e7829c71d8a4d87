/**
 * CheckpointStore: the local catalogue (ADR 0003).
 *
 *   <home>/checkpoints/<name>/   complete checkpoints: the only thing ever listed
 *   <home>/tmp/<pid>-<random>/   writes in progress and removals in progress
 *
 * Invariants: a directory appears under checkpoints/ only by one rename(2) of a fully written,
 * fsynced and verified temp directory, so a crash leaves tmp/ leftovers, never a half
 * checkpoint; removal renames out of checkpoints/ first, so a crash mid-removal lists nothing
 * half-deleted. Names are validated before any path is built from them.
 *
 * Frozen disk layers (`<home>/layers/`, format 1.1) outlive any one checkpoint: several may
 * share them. `remove` and `cleanTemp` delete only layers that no checkpoint's manifest, no
 * running VM and no live snapwake process reaches (src/disk collectLayers).
 *
 * Replacement (relayout): the old directory is renamed aside to `tmp/<pid>-<rand>.replaced-<name>`,
 * the new verified one renamed in, the old deleted. Two renames cannot be one, so a crash
 * between them lists neither; the old copy is then whole under tmp/, and `cleanTemp` renames
 * it back (or, if the new one made it in, deletes it): after recovery the old or the new is
 * listed, never neither nor half of one. A process reading the old checkpoint keeps its open
 * files valid (Linux rename/unlink); a file it opens by path later sees the new one.
 */
import crypto from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { collectLayers } from "../../disk/index.ts";
import { InvalidCheckpointError, NotFoundError } from "../../errors.ts";
import * as layout from "../../store/layout.ts";
import { StoreLock } from "../../store/lock.ts";
import { errorCode, processAlive } from "../../util/index.ts";
import { type Manifest, packIdOf } from "../format/manifest.ts";
import { CHECKPOINT_NAME_PATTERN, checkCheckpointName } from "../format/names.ts";
import { type CheckpointListing, listingOf, readManifestFile } from "../read/checkpoint-files.ts";
import { CheckpointReader } from "../read/reader.ts";
import { DigestCache } from "./digest-cache.ts";
import { nodeStoreIo, type StoreIo } from "./store-io.ts";

export interface StoreOptions {
  /** The snapwake home directory ($SNAPWAKE_HOME is resolved by the CLI, not here). */
  readonly home: string;
  /** File creation for writers; tests inject failures here. Default: node:fs. */
  readonly io?: StoreIo;
}

/** A checkpoint directory that is not valid, as found by `scan`. */
export interface InvalidListing {
  readonly name: string;
  readonly error: InvalidCheckpointError;
}

/** tmp/ entries: a write, a removal, a replacement, a save's spooled stream (save/spool.ts). */
const TEMP_NAME = /^([0-9]{1,10})-[0-9a-f]{16}(\.removing|\.stream|\.replaced-(.+))?$/;

export class CheckpointStore {
  readonly home: string;
  readonly io: StoreIo;

  constructor(opts: StoreOptions) {
    this.home = opts.home;
    this.io = opts.io ?? nodeStoreIo;
  }

  get checkpointsDir(): string {
    return layout.checkpointsDir(this.home);
  }

  get tempDir(): string {
    return layout.tempDir(this.home);
  }

  /** Frozen disk layers that checkpoints reference (src/disk's LayerStore owns the folder). */
  get layersDir(): string {
    return layout.layersDir(this.home);
  }

  /** Directory of checkpoint `name` (validated; it need not exist). */
  dirOf(name: string): string {
    checkCheckpointName(name);
    return layout.checkpointDir(this.home, name);
  }

  /** Complete checkpoints that open (see `stat`), by name; corrupt ones are left out. */
  async list(): Promise<CheckpointListing[]> {
    return (await this.scan()).checkpoints;
  }

  /** Like `list`, and also says which directories under checkpoints/ are not valid and why. */
  async scan(): Promise<{ checkpoints: CheckpointListing[]; invalid: InvalidListing[] }> {
    const checkpoints: CheckpointListing[] = [];
    const invalid: InvalidListing[] = [];
    for (const name of (await this.#entries(this.checkpointsDir)).sort()) {
      if (!CHECKPOINT_NAME_PATTERN.test(name)) continue; // not something we wrote
      try {
        checkpoints.push(await this.stat(name));
      } catch (error) {
        if (error instanceof InvalidCheckpointError) invalid.push({ name, error });
        else if (!(error instanceof NotFoundError)) throw error; // NotFound: removed meanwhile
      }
    }
    return { checkpoints, invalid };
  }

  /**
   * The listing of one checkpoint, after the checks CheckpointReader.open makes (manifest,
   * files, index, pack header; not every chunk: that is `verify`). NotFoundError if absent,
   * InvalidCheckpointError if those checks fail.
   */
  async stat(name: string): Promise<CheckpointListing> {
    const reader = await CheckpointReader.open(this, name);
    await reader.close();
    return listingOf(reader.manifest, reader.dir, reader.bytesOnDisk);
  }

  /**
   * Removes a checkpoint: unlisted atomically first, then deleted with what is kept about it
   * outside it (its working sets and restore records); then the frozen disk layers nothing
   * uses any more. NotFoundError if absent. Says how much space that gave back, and how
   * much stays because other checkpoints link the same packs (format 1.2).
   */
  async remove(name: string): Promise<RemoveReport> {
    const dir = this.dirOf(name);
    // Refused while a save, restore or relayout uses it (a lazy restore until its fill ends).
    const lock = await StoreLock.acquire(this.home, {
      command: "rm",
      mode: "shared",
      uses: [{ checkpoint: name, access: "write" }],
    });
    try {
      return await this.#remove(name, dir);
    } finally {
      await lock.release();
    }
  }

  async #remove(name: string, dir: string): Promise<RemoveReport> {
    const doomed = `${await this.newTempPath()}.removing`;
    try {
      await rename(dir, doomed);
    } catch (error) {
      if (errorCode(error) === "ENOENT")
        throw new NotFoundError(`No checkpoint named "${name}" in ${this.checkpointsDir}`);
      throw error;
    }
    await syncDir(this.checkpointsDir);
    const report = await linkedBytes(doomed);
    await rm(doomed, { recursive: true, force: true });
    await rm(layout.workingSetsDir(this.home, name), { recursive: true, force: true });
    await rm(layout.restoresDir(this.home, name), { recursive: true, force: true });
    await rm(layout.ramImageDir(this.home, name), { recursive: true, force: true });
    await this.collectLayers();
    return report;
  }

  /**
   * Deletes the frozen disk layers that no checkpoint, running VM or live snapwake process
   * uses; returns their ids. A checkpoint whose manifest cannot be read keeps nothing alive:
   * it could not be restored anyway.
   */
  async collectLayers(): Promise<string[]> {
    const roots = (await this.#manifests()).flatMap((m) => m.layers.map((l) => l.id));
    return collectLayers(this.home, roots);
  }

  /** Drops the page-digest cache of packs no checkpoint links (ADR 0007); returns how many. */
  async pruneDigestCache(): Promise<number> {
    const keep = new Set(
      (await this.#manifests()).flatMap((m) => [packIdOf(m), ...m.packs.map((p) => p.id)]),
    );
    return new DigestCache(this.home).prune(keep);
  }

  /** The manifests of the listed checkpoints that can be read (a damaged one keeps nothing). */
  async #manifests(): Promise<Manifest[]> {
    const out: Manifest[] = [];
    for (const name of await this.#entries(this.checkpointsDir)) {
      if (!CHECKPOINT_NAME_PATTERN.test(name)) continue;
      const manifest = await readManifestFile(this.dirOf(name), name).catch((error: unknown) => {
        if (error instanceof InvalidCheckpointError) return null;
        throw error;
      });
      if (manifest !== null) out.push(manifest);
    }
    return out;
  }

  /**
   * Removes leftovers of writes and removals whose process is gone, working sets and restore
   * records of names no checkpoint has, and frozen disk layers nothing uses (`collectLayers`);
   * returns how many items. Entries of live processes (this
   * one included) are in use and kept.
   */
  async cleanTemp(): Promise<number> {
    // Alone: no save, restore or rm may run meanwhile (ADR 0009).
    const lock = await StoreLock.acquire(this.home, { command: "gc", mode: "exclusive" });
    try {
      return await this.#cleanTemp();
    } finally {
      await lock.release();
    }
  }

  async #cleanTemp(): Promise<number> {
    let removed = 0;
    for (const entry of await this.#entries(this.tempDir)) {
      const m = TEMP_NAME.exec(entry);
      if (m === null) continue; // not ours
      const pid = Number(m[1]);
      if (pid === process.pid || processAlive(pid)) continue;
      if (m[3] !== undefined && (await this.#putBack(join(this.tempDir, entry), m[3]))) {
        removed += 1;
        continue;
      }
      await rm(join(this.tempDir, entry), { recursive: true, force: true });
      removed += 1;
    }
    removed += await this.#pruneOrphans();
    await this.pruneDigestCache(); // a cache: not counted as removed items
    return removed + (await this.collectLayers()).length;
  }

  /**
   * Working sets, restore records and RAM images of names no checkpoint has (a removal cut
   * short).
   */
  async #pruneOrphans(): Promise<number> {
    const listed = new Set(await this.#entries(this.checkpointsDir));
    let removed = 0;
    const roots = [
      layout.workingSetsRoot(this.home),
      layout.restoresRoot(this.home),
      layout.ramImagesRoot(this.home),
    ];
    for (const root of roots) {
      for (const name of await this.#entries(root)) {
        if (!CHECKPOINT_NAME_PATTERN.test(name) || listed.has(name)) continue;
        await rm(join(root, name), { recursive: true, force: true });
        removed += 1;
      }
    }
    return removed;
  }

  /**
   * Replaces listed checkpoint `name` with the verified checkpoint in `newDir` (under tmp/):
   * old renamed aside, new renamed in, old deleted (see the header for crashes in between).
   */
  async replace(name: string, newDir: string): Promise<void> {
    const dir = this.dirOf(name);
    const aside = `${await this.newTempPath()}.replaced-${name}`;
    try {
      await rename(dir, aside);
    } catch (error) {
      if (errorCode(error) === "ENOENT")
        throw new NotFoundError(`No checkpoint named "${name}" in ${this.checkpointsDir}`);
      throw error;
    }
    try {
      await rename(newDir, dir);
    } catch (error) {
      await rename(aside, dir); // put the old one back: it stays listed
      throw error;
    }
    await syncDir(this.checkpointsDir);
    await rm(aside, { recursive: true, force: true });
  }

  /** A crashed replacement's old copy goes back if nothing took its name; true if it did. */
  async #putBack(aside: string, name: string): Promise<boolean> {
    if (!CHECKPOINT_NAME_PATTERN.test(name)) return false;
    try {
      await rename(aside, this.dirOf(name)); // fails (ENOTEMPTY/EEXIST) when the new one is in
    } catch {
      return false;
    }
    await syncDir(this.checkpointsDir);
    return true;
  }

  /** A fresh path under tmp/ named after this process (the directories exist afterwards). */
  async newTempPath(): Promise<string> {
    await mkdir(this.tempDir, { recursive: true });
    await mkdir(this.checkpointsDir, { recursive: true });
    return join(this.tempDir, `${process.pid}-${crypto.randomBytes(8).toString("hex")}`);
  }

  async #entries(dir: string): Promise<string[]> {
    try {
      return await readdir(dir);
    } catch (error) {
      if (errorCode(error) === "ENOENT") return [];
      throw error;
    }
  }
}

/** What removing a checkpoint gave back (frozen disk layers aside). */
export interface RemoveReport {
  /** Its files no other checkpoint links: freed. */
  readonly freedBytes: number;
  /** Its packs other checkpoints link too: they stay until the last of those goes. */
  readonly sharedBytes: number;
}

/** Sizes of the files in `dir`, split by whether another link keeps them. */
async function linkedBytes(dir: string): Promise<RemoveReport> {
  let freedBytes = 0;
  let sharedBytes = 0;
  for (const entry of await readdir(dir)) {
    const info = await stat(join(dir, entry));
    if (!info.isFile()) continue;
    if (info.nlink > 1) sharedBytes += info.size;
    else freedBytes += info.size;
  }
  return { freedBytes, sharedBytes };
}

/** fsync a directory, so a rename or a new entry in it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
