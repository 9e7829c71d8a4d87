/**
 * LayerStore: the disk layers snapwake owns, in `<home>/layers/`:
 *
 *   <id>.qcow2 | <id>.raw   the layer file (an overlay a VM writes, or a frozen layer)
 *   <id>.json               its record: format, backing layer, virtual size, and once frozen
 *                           its identity (bytes, metaSha256, contentSha256)
 *   <id>.index              the cached block index of a frozen layer (block-index.ts)
 *   pending/<pid>-<id>      a layer being created by a live process (kept from gc meanwhile)
 *
 * Invariants: a layer's file path never changes, so backing paths written into overlays stay
 * true; a frozen layer is never written again (its record says so, and its identity is
 * checked on every use); ids are 16 random hex digits, checked before any path is built.
 */
import crypto from "node:crypto";
import { copyFile, link, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DecodeError } from "../errors.ts";
import { LAYER_RECORD_BYTES_MAX } from "../limits.ts";
import { layersDir } from "../store/layout.ts";
import { errorCode } from "../util/index.ts";
import { BlockIndex } from "./block-index.ts";
import { DiskLayerError } from "./layer-error.ts";
import { LayerFile, type LayerFormat } from "./layer-file.ts";
import { createOverlay } from "./qemu-img.ts";

export const LAYER_ID_PATTERN = /^[0-9a-f]{16}$/;

/** A frozen layer as a checkpoint records it. */
export interface LayerRecord {
  readonly id: string;
  /** File name inside `<home>/layers/`. */
  readonly file: string;
  readonly format: LayerFormat;
  readonly bytes: number;
  readonly virtualBytes: number;
  readonly metaSha256: string;
  readonly contentSha256: string;
  /** The layer below, or null for a base layer. */
  readonly backing: string | null;
}

/** `<id>.json`. */
interface Sidecar {
  readonly id: string;
  readonly format: LayerFormat;
  readonly backing: string | null;
  readonly virtualBytes: number;
  readonly frozen?: { bytes: number; metaSha256: string; contentSha256: string };
}

export class LayerStore {
  readonly dir: string;

  constructor(home: string) {
    this.dir = layersDir(home);
  }

  /** The layer file of `id` (validated). */
  pathOf(id: string, format: LayerFormat): string {
    return join(this.dir, fileOf(checkId(id), format));
  }

  get pendingDir(): string {
    return join(this.dir, "pending");
  }

  /** A new empty qcow2 overlay over `backing` (frozen or about to be); returns its id. */
  async createOverlay(backing: { id: string; format: LayerFormat; virtualBytes: number }) {
    const id = await this.#claim();
    await createOverlay({
      path: this.pathOf(id, "qcow2"),
      backingPath: this.pathOf(backing.id, backing.format),
      backingFormat: backing.format,
      virtualBytes: backing.virtualBytes,
    });
    await this.#writeSidecar({
      id,
      format: "qcow2",
      backing: backing.id,
      virtualBytes: backing.virtualBytes,
    });
    return id;
  }

  /**
   * Takes a user's image into the store as a layer (hard link: same inode, no copy; a copy
   * across file systems). Only a standalone image: its backing chain would be outside our care.
   */
  async adopt(path: string, format: LayerFormat): Promise<{ id: string; virtualBytes: number }> {
    const file = await LayerFile.open(path, format);
    const { backingFile, virtualBytes } = file;
    await file.close();
    if (backingFile !== null) {
      throw new DiskLayerError(
        path,
        `it has a backing file (${backingFile}); snapwake freezes standalone images only: ` +
          "flatten it first (qemu-img convert -O qcow2)",
      );
    }
    const id = await this.#claim();
    const target = this.pathOf(id, format);
    await link(path, target).catch(async (error: unknown) => {
      if (errorCode(error) !== "EXDEV") throw error;
      await copyFile(path, target);
    });
    await this.#writeSidecar({ id, format, backing: null, virtualBytes });
    return { id, virtualBytes };
  }

  /** The layer stops being pending: a hold or a manifest now keeps it. */
  async release(id: string): Promise<void> {
    await rm(join(this.pendingDir, `${process.pid}-${checkId(id)}`), { force: true });
  }

  /** Deletes a layer this process created and never froze (a failed freeze or restore). */
  async discard(id: string, format: LayerFormat): Promise<void> {
    for (const f of [fileOf(id, format), `${id}.json`, `${id}.index`]) {
      await rm(join(this.dir, f), { force: true });
    }
    await this.release(id);
  }

  /**
   * Marks `id` frozen (its file will never be written again): builds and caches its block
   * index and records its identity. Idempotent; a layer already frozen keeps its record.
   */
  async freeze(id: string): Promise<LayerRecord> {
    const side = await this.sidecar(id);
    if (side.frozen !== undefined) return recordOf(side);
    const file = await LayerFile.open(this.pathOf(id, side.format), side.format);
    try {
      const index = await BlockIndex.build(file);
      await this.#writeAtomic(`${id}.index`, index.encode());
      const frozen = {
        bytes: file.bytes,
        metaSha256: file.metaSha256,
        contentSha256: index.layer.contentSha256,
      };
      const sealed = { ...side, frozen };
      await this.#writeSidecar(sealed);
      return recordOf(sealed);
    } finally {
      await file.close();
    }
  }

  /** The record of frozen layer `id`; DiskLayerError when it is missing or not frozen. */
  async record(id: string): Promise<LayerRecord> {
    const side = await this.sidecar(id);
    if (side.frozen === undefined) {
      throw new DiskLayerError(id, "it is not frozen (a VM may still write it)");
    }
    return recordOf(side);
  }

  /** Frozen layer `top` and every layer below it, top first. */
  async chain(top: string, layersMax: number): Promise<LayerRecord[]> {
    const chain: LayerRecord[] = [];
    for (let id: string | null = top; id !== null; id = chain[chain.length - 1]?.backing ?? null) {
      if (chain.length >= layersMax) {
        throw new DiskLayerError(top, `its chain is longer than ${layersMax} layers`);
      }
      chain.push(await this.record(id));
    }
    return chain;
  }

  /** The layer's file, opened and checked against its record. */
  openLayer(record: LayerRecord): Promise<LayerFile> {
    return LayerFile.open(join(this.dir, record.file), record.format, record);
  }

  /** The cached block index of a frozen layer; rebuilt (and identity re-checked) if damaged. */
  async loadIndex(record: LayerRecord): Promise<BlockIndex> {
    const cached = await readFile(join(this.dir, `${record.id}.index`)).then(
      (bytes) => decodeOrNull(bytes),
      () => null,
    );
    if (cached !== null && sameLayer(cached, record)) return cached;
    const file = await this.openLayer(record);
    try {
      const index = await BlockIndex.build(file);
      if (!sameLayer(index, record)) {
        throw new DiskLayerError(file.path, "its content changed since it was frozen");
      }
      await this.#writeAtomic(`${record.id}.index`, index.encode());
      return index;
    } finally {
      await file.close();
    }
  }

  /** The sidecar of `id`, validated. */
  async sidecar(id: string): Promise<Sidecar> {
    const path = join(this.dir, `${checkId(id)}.json`);
    let text: string;
    try {
      const bytes = await readFile(path);
      if (bytes.byteLength > LAYER_RECORD_BYTES_MAX) throw new Error("over its size limit");
      text = bytes.toString("utf8");
    } catch (error) {
      throw new DiskLayerError(id, `its record ${path} cannot be read`, { cause: error });
    }
    return parseSidecar(text, id);
  }

  /** A fresh id, marked pending for this process before any of its files exist. */
  async #claim(): Promise<string> {
    await mkdir(this.pendingDir, { recursive: true });
    const id = crypto.randomBytes(8).toString("hex");
    await writeFile(join(this.pendingDir, `${process.pid}-${id}`), "", { flag: "wx" });
    return id;
  }

  #writeSidecar(side: Sidecar): Promise<void> {
    return this.#writeAtomic(`${side.id}.json`, Buffer.from(`${JSON.stringify(side)}\n`));
  }

  async #writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    const temp = join(this.dir, `.${name}.${process.pid}.tmp`);
    await writeFile(temp, bytes);
    await rename(temp, join(this.dir, name));
  }
}

export function fileOf(id: string, format: LayerFormat): string {
  return `${id}.${format}`;
}

function checkId(id: string): string {
  if (!LAYER_ID_PATTERN.test(id)) throw new DiskLayerError(id, "not a layer id");
  return id;
}

function recordOf(side: Sidecar): LayerRecord {
  if (side.frozen === undefined) throw new DiskLayerError(side.id, "it is not frozen");
  return {
    id: side.id,
    file: fileOf(side.id, side.format),
    format: side.format,
    bytes: side.frozen.bytes,
    virtualBytes: side.virtualBytes,
    metaSha256: side.frozen.metaSha256,
    contentSha256: side.frozen.contentSha256,
    backing: side.backing,
  };
}

function sameLayer(index: BlockIndex, record: LayerRecord): boolean {
  const l = index.layer;
  return (
    l.layerBytes === record.bytes &&
    l.metaSha256 === record.metaSha256 &&
    l.contentSha256 === record.contentSha256
  );
}

function decodeOrNull(bytes: Uint8Array): BlockIndex | null {
  try {
    return BlockIndex.decode(bytes);
  } catch (error) {
    if (error instanceof DecodeError) return null; // a damaged cache is rebuilt
    throw error;
  }
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

function parseSidecar(text: string, id: string): Sidecar {
  const bad = () => new DiskLayerError(id, "its record is malformed");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (error) {
    throw new DiskLayerError(id, "its record is not JSON", { cause: error });
  }
  if (typeof v !== "object" || v === null) throw bad();
  const o = v as Record<string, unknown>;
  const format: LayerFormat | null = o.format === "qcow2" || o.format === "raw" ? o.format : null;
  const backing = o.backing === null || typeof o.backing === "string" ? o.backing : undefined;
  if (o.id !== id || format === null || backing === undefined) throw bad();
  if (backing !== null && !LAYER_ID_PATTERN.test(backing)) throw bad();
  if (!Number.isSafeInteger(o.virtualBytes) || (o.virtualBytes as number) < 0) throw bad();
  const side = { id, format, backing, virtualBytes: o.virtualBytes as number };
  if (o.frozen === undefined) return side;
  const f = o.frozen as Record<string, unknown> | null;
  if (
    typeof f !== "object" ||
    f === null ||
    !Number.isSafeInteger(f.bytes) ||
    typeof f.metaSha256 !== "string" ||
    !SHA256_HEX.test(f.metaSha256) ||
    typeof f.contentSha256 !== "string" ||
    !SHA256_HEX.test(f.contentSha256)
  ) {
    throw bad();
  }
  const frozen = {
    bytes: f.bytes as number,
    metaSha256: f.metaSha256,
    contentSha256: f.contentSha256,
  };
  return { ...side, frozen };
}
