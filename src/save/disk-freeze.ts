/**
 * Freezing a VM's writable disks for a checkpoint (docs/adr/0006). One freeze step, for every
 * writable drive at once: the image the drive writes becomes a frozen layer in `<home>/layers/`
 * (a user's own image is hard-linked in first), and a new empty qcow2 overlay, created by us
 * with its backing path already pointing at that layer, takes the writes (QMP
 * `blockdev-snapshot-sync`, mode "existing"). The VM's hold file then names the new overlays.
 *
 * A save freezes twice when the VM runs: once before `migrate`, so pages can be compared with
 * a disk that no longer changes, and once in the `pre-switchover` pause, when the vCPUs are
 * stopped and the disk state is exactly the one that belongs to the memory snapshot. A paused
 * VM needs only the first.
 *
 * Invariants: no QMP call is made before every drive's image is known to be readable by
 * snapwake (adopt checks it); an overlay that did not become the drive's image is discarded.
 */
import { join, resolve } from "node:path";
import type { DiskInfo } from "../checkpoint/index.ts";
import {
  DiskDuplicates,
  type DriveHold,
  fileOf,
  LAYER_ID_PATTERN,
  type LayerFormat,
  type LayerRecord,
  LayerStore,
  readHold,
  writeHold,
} from "../disk/index.ts";
import { QemuError } from "../errors.ts";
import { DISK_CHAIN_LAYERS_MAX } from "../limits.ts";
import type { ManagedVm } from "../vm/index.ts";

interface Drive {
  readonly drive: number;
  /** QEMU's block device name for `-drive if=virtio`: virtio0, virtio1, … in spec order. */
  readonly device: string;
  /** The layer the drive writes now, or null while it writes the user's own image. */
  active: string | null;
  readonly userImage: { path: string; format: LayerFormat };
  /** The layer frozen by the last freeze step. */
  frozen: string | null;
}

export class DiskFreezer {
  readonly #store: LayerStore;
  readonly #vm: ManagedVm;
  readonly #drives: Drive[];
  readonly #frozenIds: string[] = [];

  private constructor(store: LayerStore, vm: ManagedVm, drives: Drive[]) {
    this.#store = store;
    this.#vm = vm;
    this.#drives = drives;
  }

  /** The freezer for the VM's writable disks, or null when it has none (nothing to freeze). */
  static async forVm(home: string, vm: ManagedVm): Promise<DiskFreezer | null> {
    const store = new LayerStore(home);
    const holds = new Map((await readHold(vm.stateDir)).map((h) => [h.drive, h.active]));
    const drives: Drive[] = [];
    vm.spec.disks.forEach((disk, drive) => {
      if (disk.readonly) return;
      const inStore = layerIdOf(store, disk.path);
      drives.push({
        drive,
        device: `virtio${drive}`,
        active: holds.get(drive) ?? inStore,
        userImage: { path: disk.path, format: disk.format },
        frozen: null,
      });
    });
    return drives.length === 0 ? null : new DiskFreezer(store, vm, drives);
  }

  /**
   * One freeze step (see the module comment). On return every drive writes a new overlay and
   * `frozenIds` lists the layers this step froze, not yet sealed.
   */
  async freeze(): Promise<void> {
    await this.#checkDevices();
    const adopted: string[] = [];
    const overlays: { drive: Drive; id: string; below: string }[] = [];
    try {
      for (const d of this.#drives) {
        let below = d.active;
        if (below === null) {
          below = (await this.#store.adopt(d.userImage.path, d.userImage.format)).id;
          adopted.push(below);
        }
        const side = await this.#store.sidecar(below);
        const id = await this.#store.createOverlay({ ...side, id: below });
        overlays.push({ drive: d, id, below });
      }
    } catch (error) {
      for (const o of overlays) await this.#store.discard(o.id, "qcow2");
      for (const id of adopted) await this.#store.release(id);
      throw error;
    }
    await this.#snapshot(overlays);
    for (const o of overlays) {
      o.drive.active = o.id;
      o.drive.frozen = o.below;
      this.#frozenIds.push(o.below);
    }
    await writeHold(this.#vm.stateDir, this.#holds());
    for (const id of [...adopted, ...overlays.map((o) => o.id)]) await this.#store.release(id);
  }

  /** Seals every layer frozen so far (index and identity; already sealed ones are kept). */
  async seal(): Promise<void> {
    for (const id of this.#frozenIds) await this.#store.freeze(id);
  }

  /** The block indexes of every layer below the drives' overlays, to find duplicate pages. */
  async duplicates(): Promise<DiskDuplicates> {
    const { layers } = await this.chains();
    return DiskDuplicates.open(this.#store, layers);
  }

  /** The frozen chain of every drive (top first) and the layers they name, for the manifest. */
  async chains(): Promise<{ layers: LayerRecord[]; disks: DiskInfo[] }> {
    const byId = new Map<string, LayerRecord>();
    const disks: DiskInfo[] = [];
    for (const d of this.#drives) {
      if (d.frozen === null) throw new QemuError(`drive ${d.drive} was never frozen`);
      const chain = await this.#store.chain(d.frozen, DISK_CHAIN_LAYERS_MAX);
      for (const layer of chain) byId.set(layer.id, layer);
      disks.push({ drive: d.drive, layers: chain.map((l) => l.id) });
    }
    return { layers: [...byId.values()], disks };
  }

  /** All drives switch to their overlays in one QMP transaction each (drives are independent). */
  async #snapshot(overlays: { drive: Drive; id: string }[]): Promise<void> {
    const done: Drive[] = [];
    try {
      for (const o of overlays) {
        await this.#vm.qmp.execute("blockdev-snapshot-sync", {
          device: o.drive.device,
          "snapshot-file": this.#store.pathOf(o.id, "qcow2"),
          format: "qcow2",
          mode: "existing",
        });
        done.push(o.drive);
      }
    } catch (error) {
      // Drives already switched keep their new overlay (it is their image now): record it.
      for (const o of overlays) {
        if (done.includes(o.drive)) o.drive.active = o.id;
        else await this.#store.discard(o.id, "qcow2");
      }
      await writeHold(this.#vm.stateDir, this.#holds());
      throw error;
    }
  }

  async #checkDevices(): Promise<void> {
    const devices = new Set((await this.#vm.qmp.execute("query-block", {})).map((b) => b.device));
    const missing = this.#drives.find((d) => !devices.has(d.device));
    if (missing !== undefined) {
      throw new QemuError(`QEMU has no block device ${missing.device} for disk ${missing.drive}`);
    }
  }

  #holds(): DriveHold[] {
    return this.#drives.flatMap((d) =>
      d.active === null ? [] : [{ drive: d.drive, active: d.active }],
    );
  }
}

/** The layer id of `path` when it is a layer file of `store`, else null. */
function layerIdOf(store: LayerStore, path: string): string | null {
  const name = resolve(path).slice(resolve(store.dir).length + 1);
  const id = name.replace(/\.(qcow2|raw)$/, "");
  if (!LAYER_ID_PATTERN.test(id)) return null;
  const ext = name.endsWith(".raw") ? "raw" : "qcow2";
  return join(store.dir, fileOf(id, ext)) === resolve(path) ? id : null;
}
