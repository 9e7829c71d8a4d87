/**
 * The reader's side of disk references (format 1.1): the frozen layers a checkpoint names, in
 * `<home>/layers/`, opened lazily and checked (size, then metadata hash) before any block is
 * read; the blocks of a disk chunk read in reference order (sorted by layer and offset, so each
 * layer is read front to back); and every block checked against its reference's SHA-256
 * before any page of the chunk is handed out.
 *
 * Invariant: a block that differs from what the checkpoint recorded is an
 * InvalidCheckpointError naming the layer, the guest offset and a page that refers to it;
 * never a wrong page.
 */
import crypto from "node:crypto";
import { join } from "node:path";
import { LayerFile } from "../../disk/index.ts";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import type { DiskRefTable } from "../format/disk-refs.ts";
import type { LayerInfo } from "../format/manifest.ts";
import { sizeOf } from "./checkpoint-files.ts";

export class CheckpointLayers {
  readonly #checkpoint: string;
  readonly #dir: string | null;
  readonly #layers: readonly LayerInfo[];
  readonly #refs: DiskRefTable;
  readonly #open = new Map<number, Promise<LayerFile>>();

  /** `dir` is `<home>/layers`; null when the caller has no home (then no block can be read). */
  constructor(
    checkpoint: string,
    dir: string | null,
    layers: readonly LayerInfo[],
    refs: DiskRefTable,
  ) {
    this.#checkpoint = checkpoint;
    this.#dir = dir;
    this.#layers = layers;
    this.#refs = refs;
  }

  /** Every layer file is there with its recorded size (cheap: one stat each). */
  async checkPresent(): Promise<void> {
    if (this.#dir === null) return;
    for (const layer of this.#layers) {
      const size = await sizeOf(join(this.#dir, layer.file));
      if (size === null) throw this.#fail(layer, "is missing");
      if (size !== layer.bytes)
        throw this.#fail(layer, `has ${size} bytes, expected ${layer.bytes}`);
    }
  }

  /**
   * The raw blocks of references first .. first + count − 1, back to back (unverified). The
   * references are sorted by (layer, offset), so each layer's share is one batched read.
   */
  async read(first: number, count: number): Promise<Uint8Array> {
    const out = Buffer.allocUnsafe(count * PAGE_SIZE_BYTES);
    for (let k = 0; k < count; ) {
      const layerIndex = this.#refs.entry(first + k).layer;
      const offsets: number[] = [];
      while (k + offsets.length < count) {
        const ref = this.#refs.entry(first + k + offsets.length);
        if (ref.layer !== layerIndex) break;
        offsets.push(ref.offsetBytes);
      }
      const file = await this.#file(layerIndex);
      try {
        out.set(await file.readBlocks(offsets), k * PAGE_SIZE_BYTES);
      } catch (error) {
        const why = error instanceof Error ? error.message : String(error);
        throw this.#fail(this.#layerAt(layerIndex), `cannot give its blocks: ${why}`, error);
      }
      k += offsets.length;
    }
    return out;
  }

  /**
   * Checks each block of `raw` (references first ..) against its recorded SHA-256 and returns
   * the pages; `pageOf(k)` describes a guest page referring to block k, for the error.
   */
  verify(first: number, raw: Uint8Array, pageOf: (k: number) => string): Uint8Array[] {
    const count = raw.byteLength / PAGE_SIZE_BYTES;
    return Array.from({ length: count }, (_, k) => {
      const ref = this.#refs.entry(first + k);
      const page = raw.subarray(k * PAGE_SIZE_BYTES, (k + 1) * PAGE_SIZE_BYTES);
      if (!crypto.hash("sha256", page, "buffer").equals(ref.sha256)) {
        throw this.#fail(
          this.#layerAt(ref.layer),
          `was modified: its block at guest offset ${ref.offsetBytes}, which ${pageOf(k)} ` +
            "refers to, fails its hash check",
        );
      }
      return page;
    });
  }

  async close(): Promise<void> {
    const files = [...this.#open.values()];
    this.#open.clear();
    for (const f of files)
      await f.then(
        (file) => file.close(),
        () => undefined,
      );
  }

  #file(index: number): Promise<LayerFile> {
    let file = this.#open.get(index);
    if (file === undefined) {
      const layer = this.#layerAt(index);
      if (this.#dir === null) throw this.#fail(layer, "cannot be found: no snapwake home given");
      const path = join(this.#dir, layer.file);
      file = LayerFile.open(path, layer.format, layer).catch((error: unknown) => {
        const why = error instanceof Error ? error.message : String(error);
        throw this.#fail(layer, `cannot be used: ${why}`, error);
      });
      file.catch(() => undefined); // observed by every caller; never unhandled
      this.#open.set(index, file);
    }
    return file;
  }

  #layerAt(index: number): LayerInfo {
    const layer = this.#layers[index];
    if (layer === undefined)
      throw new RangeError(`layer ${index} was checked when the index opened`);
    return layer;
  }

  #fail(layer: LayerInfo, why: string, cause?: unknown): InvalidCheckpointError {
    return new InvalidCheckpointError(
      this.#checkpoint,
      `frozen disk layer ${layer.id} ("${layer.file}") ${why}`,
      cause === undefined ? undefined : { cause },
    );
  }
}
