/**
 * DiskDuplicates: the block indexes of a set of frozen layers, asked for every non-zero page
 * a save receives ("is this page a block of the VM's own disk?"), and the layers' files, to
 * confirm a candidate by reading it. Layers are asked top of the chain first; any frozen layer
 * holding the block is as good as another, since a reference names its layer.
 */
import type { BlockIndex } from "./block-index.ts";
import type { LayerFile } from "./layer-file.ts";
import type { LayerRecord, LayerStore } from "./layer-store.ts";

export interface DiskCandidate {
  readonly layer: string;
  readonly offsetBytes: number;
}

export class DiskDuplicates {
  readonly layers: readonly LayerRecord[];
  readonly #indexes: readonly BlockIndex[];
  readonly #files: Map<string, LayerFile>;

  private constructor(layers: LayerRecord[], indexes: BlockIndex[], files: Map<string, LayerFile>) {
    this.layers = layers;
    this.#indexes = indexes;
    this.#files = files;
  }

  /** Loads (or builds) each layer's index and opens its file, checking its identity. */
  static async open(store: LayerStore, layers: readonly LayerRecord[]): Promise<DiskDuplicates> {
    const unique = [...new Map(layers.map((l) => [l.id, l])).values()];
    const files = new Map<string, LayerFile>();
    try {
      const indexes: BlockIndex[] = [];
      for (const layer of unique) {
        indexes.push(await store.loadIndex(layer));
        files.set(layer.id, await store.openLayer(layer));
      }
      return new DiskDuplicates(unique, indexes, files);
    } catch (error) {
      for (const f of files.values()) await f.close();
      throw error;
    }
  }

  /** Distinct non-zero blocks the indexes cover. */
  get blocksIndexed(): number {
    return this.#indexes.reduce((n, i) => n + i.size, 0);
  }

  /** A layer block whose digest starts like `digest`, or null. Confirm it with `read`. */
  find(digest: Uint8Array): DiskCandidate | null {
    for (let i = 0; i < this.#indexes.length; i++) {
      const offsetBytes = this.#indexes[i]?.find(digest) ?? -1;
      const layer = this.layers[i]?.id;
      if (offsetBytes >= 0 && layer !== undefined) return { layer, offsetBytes };
    }
    return null;
  }

  /**
   * The block's current bytes (4096), unverified: the caller compares them with its page.
   * A blocking read (see DiskBlockSource.read).
   */
  read(layer: string, offsetBytes: number): Uint8Array {
    const file = this.#files.get(layer);
    if (file === undefined) throw new RangeError(`layer ${layer} is not one of this set`);
    return file.readBlockSync(offsetBytes);
  }

  async close(): Promise<void> {
    for (const f of this.#files.values()) await f.close();
    this.#files.clear();
  }
}
