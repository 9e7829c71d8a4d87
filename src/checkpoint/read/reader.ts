/**
 * CheckpointReader: opens a checkpoint after checking it (manifest hash and version, every
 * file's presence and size, index hash, then every index entry, then the pack header, and the
 * presence and size of every frozen disk layer it names) and reads pages by chunk, each chunk
 * verified (length, decompression, SHA-256) before any of its pages is handed out.
 *
 * Disk chunks (format 1.1) are read the same way: their pages are blocks of frozen disk
 * layers (checkpoint-layers.ts), each checked against its recorded SHA-256. So readChunk and
 * forEachPage give verified bytes whatever holds them, and pageKind() reports a disk duplicate
 * as "stored" in its disk chunk; `diskRef` and `chunks.isDisk` tell them apart.
 *
 * Invariant: no byte reaches a caller unverified; a corrupt chunk is an InvalidCheckpointError
 * naming the chunk, never a wrong page.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { type ChunkProblem, chunkProblemReason, decodePackChunk } from "../format/chunk-decode.ts";
import { pageDigestsOf } from "../format/chunk-hash.ts";
import type { ChunkTable } from "../format/chunk-table.ts";
import {
  DEVICE_FILE_BYTES_MAX,
  type DeviceState,
  decodeDeviceState,
} from "../format/device-file.ts";
import type { DiskRefTable } from "../format/disk-refs.ts";
import {
  DISK_CHUNK_CODEC,
  diskEntry,
  INDEX_BODY_BYTES_MAX,
  INDEX_HEADER_BYTES,
  KIND_SHIFT,
  PageKind,
} from "../format/format.ts";
import { decodeIndex, type IndexContext } from "../format/index-file.ts";
import type { JsonValue } from "../format/json-value.ts";
import type { LayerInfo, Manifest, RamBlockInfo } from "../format/manifest.ts";
import { sha256Hex } from "../format/manifest.ts";
import type { PageLocation, PageMap } from "../format/page-map.ts";
import type { CheckpointStore } from "../store/store.ts";
import { checkFiles, existingDir, readManifestFile } from "./checkpoint-files.ts";
import { CheckpointLayers } from "./checkpoint-layers.ts";
import { CheckpointPacks } from "./checkpoint-packs.ts";
import type { ChunkWorkers, DecodeFailure, DecodeInput } from "./chunk-workers.ts";
import { type PageVisitor, visitPages, walkChunks, walkChunksParallel } from "./page-walk.ts";
import { throttledRead } from "./read-throttle.ts";

/** The stream info given at save time, configuration bytes restored. */
export interface StoredStream {
  readonly configuration: Uint8Array;
  readonly [key: string]: JsonValue | Uint8Array;
}

/** What a full verify read; it resolves only when every check passed. */
export interface VerifyReport {
  readonly chunks: number;
  readonly pages: number;
  readonly storedBytes: number;
  readonly rawBytes: number;
  /** Pages read from frozen disk layers (disk chunks), each hash-checked. */
  readonly diskPages: number;
  readonly deviceStateBytes: number;
  readonly ms: number;
}

export class CheckpointReader {
  readonly name: string;
  readonly dir: string;
  readonly manifest: Manifest;
  readonly blocks: readonly RamBlockInfo[];
  readonly chunks: ChunkTable;
  readonly pageMap: PageMap;
  /** Disk references (1.1): blocks of frozen layers that disk chunks' pages are. */
  readonly diskRefs: DiskRefTable;
  /** Every file of the checkpoint, manifest included (not the frozen layers it names). */
  readonly bytesOnDisk: number;
  readonly #packs: CheckpointPacks;
  readonly #layers: CheckpointLayers;
  #closed = false;

  private constructor(name: string, dir: string, manifest: Manifest, index: Opened) {
    this.name = name;
    this.dir = dir;
    this.manifest = manifest;
    this.blocks = manifest.ramBlocks;
    this.chunks = index.chunks;
    this.pageMap = index.pageMap;
    this.diskRefs = index.diskRefs;
    this.bytesOnDisk = index.bytesOnDisk;
    this.#packs = index.packs;
    this.#layers = index.layers;
  }

  /** Opens checkpoint `name` of `store`: NotFoundError if absent, InvalidCheckpointError if bad. */
  static async open(store: CheckpointStore, name: string): Promise<CheckpointReader> {
    const dir = await existingDir(store, name);
    return CheckpointReader.openDir(dir, name, store.layersDir);
  }

  /**
   * Opens the checkpoint in `dir` (e.g. a temp dir being verified), expected to be `name`;
   * its frozen disk layers (if any) are in `layersDir` (`<home>/layers`).
   */
  static async openDir(dir: string, name: string, layersDir?: string): Promise<CheckpointReader> {
    const manifest = await readManifestFile(dir, name);
    const bytesOnDisk = await checkFiles(dir, manifest, name);
    const index = await openIndexAndPack(dir, manifest, name);
    const layers = new CheckpointLayers(name, layersDir ?? null, manifest.layers, index.diskRefs);
    try {
      await layers.checkPresent();
    } catch (error) {
      await index.packs.close();
      throw error;
    }
    return new CheckpointReader(name, dir, manifest, { ...index, bytesOnDisk, layers });
  }

  /** The stream info stored at save time, with its configuration bytes. */
  stream(): StoredStream {
    const configuration = new Uint8Array(Buffer.from(this.manifest.stream.configuration, "base64"));
    return { ...this.manifest.stream.info, configuration };
  }

  /** The device state, read whole and hash-checked. */
  async deviceState(): Promise<DeviceState> {
    const ref = this.manifest.deviceState;
    const fail = (why: string) => new InvalidCheckpointError(this.name, why);
    if (ref.bytes > DEVICE_FILE_BYTES_MAX)
      throw fail(`device state file "${ref.file}" is over its size limit`);
    const path = join(this.dir, ref.file);
    const bytes = await throttledRead(ref.bytes, () => readFile(path)).catch((error: unknown) => {
      throw new InvalidCheckpointError(
        this.name,
        `device state file "${ref.file}" cannot be read`,
        { cause: error },
      );
    });
    if (bytes.byteLength !== ref.bytes) {
      throw fail(
        `device state file "${ref.file}" has ${bytes.byteLength} bytes, expected ${ref.bytes}`,
      );
    }
    if (sha256Hex(bytes) !== ref.sha256)
      throw fail(`device state hash mismatch: "${ref.file}" was modified or corrupted`);
    return decodeDeviceState(bytes, this.name, ref.file);
  }

  /** Where page `pageIndex` of block `blockIndex` is (both must be in range). */
  pageKind(blockIndex: number, pageIndex: number): PageLocation {
    return this.pageMap.locate(blockIndex, pageIndex);
  }

  /** pageKind for every page at once, by global index (PageMap.scan). */
  scanPages(stored: (index: number, chunk: number) => void, filledZero: (index: number) => void) {
    this.pageMap.scan(stored, filledZero);
  }

  /** The decompressed, verified pages of `chunk`, slot by slot. */
  async readChunk(chunk: number): Promise<Uint8Array[]> {
    return this.decodeChunk(chunk, await this.readStoredChunk(chunk));
  }

  /**
   * The chunk's stored (compressed) bytes, unverified; pair with decodeChunk. For a disk chunk:
   * its blocks, read from the frozen layers.
   */
  async readStoredChunk(chunk: number): Promise<Uint8Array> {
    this.#assertOpen();
    const e = this.chunks.entry(chunk);
    if (e.codec === DISK_CHUNK_CODEC) return this.#layers.read(e.offset, e.pageCount);
    return this.#packs.read(chunk, e.pack ?? 0, e.offset, e.storedBytes);
  }

  /** Decompresses and verifies a chunk read by readStoredChunk (into: decompressPackChunk's). */
  decodeChunk(chunk: number, stored: Uint8Array, into?: Uint8Array): Uint8Array[] {
    return this.decodeChunkWithDigests(chunk, stored, into).pages;
  }

  /**
   * decodeChunk, also giving the SHA-256 of each page (slot order, 32 bytes each) that the
   * hash check computed: an incremental save indexes a parent's pages with them.
   */
  decodeChunkWithDigests(chunk: number, stored: Uint8Array, into?: Uint8Array): Decoded {
    const e = this.chunks.entry(chunk);
    if (e.codec === DISK_CHUNK_CODEC) {
      const pages = this.#layers.verify(e.offset, stored, (slot) =>
        this.#pageOf(diskEntry(chunk, slot)),
      );
      return { pages, digests: pageDigestsOf(Buffer.concat(pages)) };
    }
    const decoded = decodePackChunk(e, stored, into);
    if (!decoded.ok) throw this.chunkError(chunk, decoded.problem);
    const { raw, digests } = decoded;
    const pages = Array.from({ length: e.pageCount }, (_, s) =>
      raw.subarray(s * PAGE_SIZE_BYTES, (s + 1) * PAGE_SIZE_BYTES),
    );
    return { pages, digests };
  }

  /**
   * What a chunk worker needs to read and decode pack chunk `chunk` itself (the pack's open
   * descriptor, where the chunk is, its codec and hash), or null for a disk chunk, which is
   * read and verified on this thread (readStoredChunk, decodeChunk).
   */
  decodeJobOf(chunk: number): DecodeInput | null {
    this.#assertOpen();
    const e = this.chunks.entry(chunk);
    if (e.codec === DISK_CHUNK_CODEC) return null;
    const fd = this.#packs.fdOf(e.pack ?? 0);
    if (fd === null)
      throw new InvalidCheckpointError(this.name, `chunk ${chunk} names missing pack ${e.pack}`);
    return {
      fd,
      offset: e.offset,
      storedBytes: e.storedBytes,
      codec: e.codec,
      pageCount: e.pageCount,
      sha256: new Uint8Array(e.sha256), // a copy: Buffer#slice would be a view of the table
    };
  }

  /** The error for a chunk a worker could not decode (the reader's own wording). */
  workerError(chunk: number, failure: DecodeFailure): Error {
    if (failure.problem !== undefined) return this.chunkError(chunk, failure.problem);
    const pack = this.chunks.packOf(chunk);
    const file = this.#packs.fileOf(pack) ?? `pack ${pack}`;
    if (failure.ended === true)
      return new InvalidCheckpointError(
        this.name,
        `pack file "${file}" ends inside chunk ${chunk}`,
      );
    return new Error(
      `Cannot read chunk ${chunk} of checkpoint "${this.name}" from "${file}": ${failure.error}`,
    );
  }

  /** The error for a pack chunk that failed to decode, naming it (and its shared pack). */
  chunkError(chunk: number, problem: ChunkProblem): InvalidCheckpointError {
    const where = this.#chunkName(chunk, this.chunks.packOf(chunk));
    return new InvalidCheckpointError(this.name, chunkProblemReason(where, problem));
  }

  /** "chunk 3", or for a shared pack's chunk "chunk 3 (shared pack "pack-….pack" of c1)". */
  #chunkName(chunk: number, pack: number): string {
    const shared = pack === 0 ? undefined : this.manifest.packs[pack - 1];
    if (shared === undefined) return `chunk ${chunk}`;
    return `chunk ${chunk} (shared pack "${shared.file}", written by ${shared.writtenBy})`;
  }

  /**
   * Visits every guest page exactly once: zero pages first (data null), then stored pages chunk
   * by chunk in pack order, each chunk read once, decompressed once and verified before its
   * pages are visited. A Promise returned by `visit` is awaited (backpressure). With `workers`,
   * they read, decompress and verify chunks ahead of the visits; a page's bytes are then valid
   * only during its visit (until its Promise settles).
   */
  async forEachPage(
    visit: PageVisitor,
    opts: { readonly workers?: ChunkWorkers } = {},
  ): Promise<void> {
    this.#assertOpen();
    await visitPages(this, visit, opts.workers ?? null);
  }

  /** The frozen-layer block that page `pageIndex` of block `blockIndex` is, or null. */
  diskRef(blockIndex: number, pageIndex: number): DiskRefInfo | null {
    const e = this.pageMap.entries[this.pageMap.indexOf(blockIndex, pageIndex)] ?? 0;
    if (e >>> KIND_SHIFT !== PageKind.diskDuplicate) return null;
    const loc = this.pageMap.locate(blockIndex, pageIndex);
    assert(loc.kind === "stored", "a disk duplicate is located in its disk chunk");
    const ref = this.diskRefs.entry(this.chunks.entry(loc.chunk).offset + loc.slot);
    const layer = this.manifest.layers[ref.layer];
    assert(layer !== undefined, "disk references were checked against the layers");
    return { layer, offsetBytes: ref.offsetBytes, sha256: Buffer.from(ref.sha256).toString("hex") };
  }

  /** "block "pc.ram" page 7": the first page whose entry is `entry`. */
  #pageOf(entry: number): string {
    const i = this.pageMap.entries.indexOf(entry);
    return i < 0 ? "no page (an unreferenced block)" : this.pageMap.describe(i);
  }

  /**
   * Reads and checks every chunk and the device state; rejects with every problem found. With
   * `workers`, chunks are read, decompressed and verified by them, several at a time.
   */
  async verify(opts: { readonly workers?: ChunkWorkers } = {}): Promise<VerifyReport> {
    const started = performance.now();
    const problems: string[] = [];
    let pages = 0;
    let diskPages = 0;
    const count = (chunk: number): void => {
      if (this.chunks.isDisk(chunk)) diskPages += this.chunks.pageCount(chunk);
      pages += this.chunks.pageCount(chunk);
    };
    if (opts.workers === undefined) {
      await walkChunks(
        this,
        null,
        (chunk, stored) => {
          count(chunk);
          this.decodeChunk(chunk, stored);
        },
        problems,
      );
    } else {
      await walkChunksParallel(this, null, count, problems, opts.workers);
    }
    let storedBytes = 0;
    for (let c = 0; c < this.chunks.count; c++) {
      if (!this.chunks.isDisk(c)) storedBytes += this.chunks.entry(c).storedBytes;
    }
    const device = await this.deviceState().catch((error: unknown) => {
      if (!(error instanceof InvalidCheckpointError)) throw error;
      problems.push(error.reason);
      return null;
    });
    if (problems.length > 0) {
      throw new InvalidCheckpointError(
        this.name,
        `verify found ${problems.length} problem(s): ${problems.join("; ")}`,
      );
    }
    const deviceStateBytes =
      (device?.sections.byteLength ?? 0) + (device?.vmdescription?.byteLength ?? 0);
    const ms = performance.now() - started;
    return {
      chunks: this.chunks.count,
      pages,
      storedBytes,
      rawBytes: pages * PAGE_SIZE_BYTES,
      diskPages,
      deviceStateBytes,
      ms,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#packs.close();
    await this.#layers.close();
  }

  #assertOpen(): void {
    assert(!this.#closed, "the reader is open");
  }
}

/** A disk duplicate: which block of which frozen layer the page is. */
export interface DiskRefInfo {
  readonly layer: LayerInfo;
  readonly offsetBytes: number;
  readonly sha256: string;
}

type Decoded = { pages: Uint8Array[]; digests: Buffer };

interface Opened {
  readonly chunks: ChunkTable;
  readonly pageMap: PageMap;
  readonly diskRefs: DiskRefTable;
  readonly packs: CheckpointPacks;
  readonly bytesOnDisk: number;
  readonly layers: CheckpointLayers;
}

async function openIndexAndPack(
  dir: string,
  manifest: Manifest,
  name: string,
): Promise<Omit<Opened, "bytesOnDisk" | "layers">> {
  const fail = (why: string) => new InvalidCheckpointError(name, why);
  const ref = manifest.index;
  if (ref.bytes > INDEX_HEADER_BYTES + INDEX_BODY_BYTES_MAX)
    throw fail(`index file "${ref.file}" is over its size limit`);
  const bytes = await throttledRead(ref.bytes, () => readFile(join(dir, ref.file)));
  if (sha256Hex(bytes) !== ref.sha256)
    throw fail(`index hash mismatch: "${ref.file}" was modified or corrupted`);
  const { chunks, pageMap, diskRefs } = decodeIndex(bytes, indexContext(manifest, name));
  return { chunks, pageMap, diskRefs, packs: await CheckpointPacks.open(dir, manifest, name) };
}

/** What decodeIndex checks the index against: the manifest's view of it. */
export function indexContext(manifest: Manifest, name: string): IndexContext {
  return {
    checkpoint: name,
    file: manifest.index.file,
    blocks: manifest.ramBlocks,
    chunkCount: manifest.chunks.count,
    packBytes: manifest.chunks.bytes,
    minor: Number(manifest.format.split(".")[1]),
    layers: manifest.layers,
    sharedPackBytes: manifest.packs.map((p) => p.bytes),
  };
}
