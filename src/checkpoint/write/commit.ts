/**
 * The end of a write (ADR 0003): pack flushed and fsynced, then index, device state and
 * manifest each written once (temp dir, fsync), the directory fsynced, everything re-opened and
 * verified as a reader would (every chunk read back; the index read back must equal the one in
 * memory: a paired check), and only then one rename into checkpoints/ and an fsync of it.
 */
import { rename } from "node:fs/promises";
import { join } from "node:path";
import { InvalidCheckpointError, UsageError } from "../../errors.ts";
import { CHUNK_PAGES_MAX, PAGE_SIZE_BYTES } from "../../limits.ts";
import { errorCode } from "../../util/index.ts";
import type { ChunkTable } from "../format/chunk-table.ts";
import { zstdCodec } from "../format/codec.ts";
import { type DeviceState, encodeDeviceState } from "../format/device-file.ts";
import { FileName, KIND_SHIFT, PAYLOAD_MASK, PageKind, SLOT_BITS } from "../format/format.ts";
import { encodeIndex } from "../format/index-file.ts";
import type { JsonObject } from "../format/json-value.ts";
import {
  type CheckpointStatistics,
  type DiskInfo,
  encodeManifest,
  type LayerInfo,
  type LayoutInfo,
  type ManifestBody,
  type ParentInfo,
  packIdOf,
  type RuntimeInfo,
  sha256Hex,
  versionOf,
} from "../format/manifest.ts";
import type { PageMap } from "../format/page-map.ts";
import { type CheckpointListing, listingOf } from "../read/checkpoint-files.ts";
import type { ChunkWorkers } from "../read/chunk-workers.ts";
import { CheckpointReader } from "../read/reader.ts";
import { DigestCache } from "../store/digest-cache.ts";
import { type CheckpointStore, syncDir } from "../store/store.ts";
import { CheckpointWriteError, writeWholeFile } from "../store/store-io.ts";
import type { ChunkPacker } from "./chunk-packer.ts";
import { type DiskPages, placeDiskRefs } from "./disk-place.ts";
import type { PackWriter } from "./pack-writer.ts";
import type { PlacedShared, SharedPages } from "./shared-pages.ts";

export interface WriterSnapshot {
  /** They read every chunk back at the end (verifyWritten). */
  readonly workers: ChunkWorkers;
  readonly store: CheckpointStore;
  readonly name: string;
  readonly dir: string;
  readonly pack: PackWriter;
  readonly meta: {
    readonly vm: JsonObject;
    readonly qemu: JsonObject;
    readonly streamInfo: JsonObject;
    readonly configuration: Uint8Array;
    readonly level: number;
    readonly createdAt: string;
    /** The manifest's optional `layout` (relayout). */
    readonly layout: LayoutInfo | null;
    /** Publish by replacing the listed checkpoint of this name (relayout). */
    readonly replace: boolean;
    /** The manifest's optional `parent` (incremental save). */
    readonly parent: ParentInfo | null;
    /** The manifest's `runtime` (1.3); null writes a 1.2-or-older manifest. */
    readonly runtime: RuntimeInfo | null;
  };
  readonly started: number;
  readonly packer: ChunkPacker;
  readonly pageMap: PageMap;
  readonly device: DeviceState;
  readonly counts: { readonly received: number; readonly seen: number; readonly stale: number };
  readonly disk: DiskPages | null;
  readonly shared: SharedPages | null;
  readonly layers: { readonly layers: readonly LayerInfo[]; readonly disks: readonly DiskInfo[] };
}

/** Runs `fn`, naming `action` in the error if the system fails it (ENOSPC, EIO…). */
async function step<T>(name: string, action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (errorCode(error) === undefined) throw error;
    throw new CheckpointWriteError(name, action, error);
  }
}

export async function commitFiles(s: WriterSnapshot): Promise<CheckpointListing> {
  const io = s.store.io;
  const packBytes = await step(s.name, `writing ${FileName.pack}`, () => s.pack.finish());
  const ownChunks = s.packer.table.count;
  const shared = (await s.shared?.place(s.pageMap, (e) => s.packer.table.append(e))) ?? {
    packs: [],
    chunks: 0,
    storedBytes: 0,
  };
  const diskRefs = placeDiskRefs(s);
  const chunks = s.packer.table.table();
  const index = encodeIndex(chunks, s.pageMap, zstdCodec(s.meta.level), diskRefs);
  await step(s.name, `writing ${FileName.index}`, () =>
    writeWholeFile(io, join(s.dir, FileName.index), index),
  );
  const device = encodeDeviceState(s.device);
  await step(s.name, `writing ${FileName.device}`, () =>
    writeWholeFile(io, join(s.dir, FileName.device), device),
  );
  const body = manifestBody(s, chunks, { pack: packBytes, index, device }, { ownChunks, shared });
  const manifest = encodeManifest(body);
  await step(s.name, `writing ${FileName.manifest}`, async () => {
    await writeWholeFile(io, join(s.dir, FileName.manifest), manifest);
    await syncDir(s.dir);
  });
  await verifyWritten(s, chunks);
  const finalDir = s.store.dirOf(s.name);
  await step(s.name, "renaming it into the catalogue", () => publish(s, finalDir));
  // A cache: the checkpoint is listed already, so nothing here may fail the commit.
  await new DigestCache(s.store.home)
    .save(packIdOf(body), s.packer.chunkDigests)
    .catch(() => undefined);
  const bytes = manifest.byteLength + index.byteLength + packBytes + device.byteLength;
  return listingOf({ format: versionOf(body), ...body }, finalDir, bytes);
}

interface Placement {
  readonly ownChunks: number;
  readonly shared: PlacedShared;
}

function manifestBody(
  s: WriterSnapshot,
  chunks: ChunkTable,
  files: { pack: number; index: Uint8Array; device: Uint8Array },
  placed: Placement,
): ManifestBody {
  return {
    name: s.name,
    createdAt: s.meta.createdAt,
    pageSizeBytes: PAGE_SIZE_BYTES,
    vm: s.meta.vm,
    qemu: s.meta.qemu,
    stream: {
      configuration: Buffer.from(s.meta.configuration).toString("base64"),
      info: s.meta.streamInfo,
    },
    ramBlocks: s.pageMap.blocks.map((b) => ({
      name: b.name,
      lengthBytes: b.pageCount * PAGE_SIZE_BYTES,
      pageCount: b.pageCount,
    })),
    deviceState: {
      file: FileName.device,
      bytes: files.device.byteLength,
      sha256: sha256Hex(files.device),
    },
    index: { file: FileName.index, bytes: files.index.byteLength, sha256: sha256Hex(files.index) },
    chunks: {
      file: FileName.pack,
      count: chunks.count,
      bytes: files.pack,
      codec: "zstd",
      level: s.meta.level,
      chunkPagesMax: CHUNK_PAGES_MAX,
    },
    statistics: statistics(
      s,
      chunks,
      files.pack + files.index.byteLength + files.device.byteLength,
      placed,
    ),
    layers: s.layers.layers,
    disks: s.layers.disks,
    ...(s.meta.layout === null ? {} : { layout: s.meta.layout }),
    packs: placed.shared.packs,
    ...(s.meta.parent === null ? {} : { parent: s.meta.parent }),
    ...(s.meta.runtime === null ? {} : { runtime: s.meta.runtime }),
  };
}

function statistics(
  s: WriterSnapshot,
  chunks: ChunkTable,
  storedBytes: number,
  placed: Placement,
): CheckpointStatistics {
  const sharedEnd = placed.ownChunks + placed.shared.chunks;
  const entries = s.pageMap.entries;
  const referenced = new Uint8Array(Math.ceil((chunks.count * CHUNK_PAGES_MAX) / 8));
  let zero = 0;
  let disk = 0;
  let shared = 0;
  let distinct = 0;
  for (const e of entries) {
    const kind = e >>> KIND_SHIFT;
    if (kind === PageKind.zero) zero++;
    if (kind === PageKind.diskDuplicate) disk++;
    if (kind !== PageKind.stored) continue;
    const slot = e & PAYLOAD_MASK; // chunk << 6 | slot: a unique slot number
    if (slot >>> SLOT_BITS >= placed.ownChunks) {
      if (slot >>> SLOT_BITS < sharedEnd) shared++;
      continue;
    }
    const bit = 1 << (slot & 7);
    const byte = referenced[slot >>> 3] ?? 0;
    if ((byte & bit) === 0) distinct++;
    referenced[slot >>> 3] = byte | bit;
  }
  const rawBytes = entries.length * PAGE_SIZE_BYTES;
  const diskRefs = chunks.count === 0 ? 0 : countDiskPages(chunks);
  return {
    pagesTotal: entries.length,
    pagesZero: zero,
    pagesUnsent: entries.length - s.counts.seen,
    pagesStored: entries.length - zero - disk,
    pagesUnique: s.packer.unique,
    pagesDuplicate: s.packer.duplicates,
    pagesStale: s.counts.stale,
    slotsUnreferenced: s.packer.unique - distinct,
    pagesReceived: s.counts.received,
    rawBytes,
    chunkRawBytes: s.packer.unique * PAGE_SIZE_BYTES,
    chunkStoredBytes: s.packer.storedBytes,
    storedBytes,
    compressionRatio: storedBytes === 0 ? 0 : Math.round((rawBytes / storedBytes) * 100) / 100,
    writeMs: Math.round(performance.now() - s.started),
    pagesDisk: disk,
    diskRefs,
    diskRawBytes: diskRefs * PAGE_SIZE_BYTES,
    pagesShared: shared,
    sharedChunks: placed.shared.chunks,
    sharedStoredBytes: placed.shared.storedBytes,
  };
}

function countDiskPages(chunks: ChunkTable): number {
  let n = 0;
  for (let c = 0; c < chunks.count; c++) if (chunks.isDisk(c)) n += chunks.pageCount(c);
  return n;
}

/** Re-opens the temp checkpoint as a reader would and checks every byte against memory. */
async function verifyWritten(s: WriterSnapshot, chunks: ChunkTable): Promise<void> {
  const reader = await CheckpointReader.openDir(s.dir, s.name, s.store.layersDir);
  try {
    const sameMap = bytesOf(reader.pageMap.entries).equals(bytesOf(s.pageMap.entries));
    if (!sameMap || !Buffer.from(reader.chunks.bytes).equals(chunks.bytes)) {
      throw new InvalidCheckpointError(s.name, "the index read back differs from the one written");
    }
    await reader.verify({ workers: s.workers });
  } finally {
    await reader.close();
  }
}

function bytesOf(a: Uint32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

async function publish(s: WriterSnapshot, finalDir: string): Promise<void> {
  if (s.meta.replace) return s.store.replace(s.name, s.dir);
  try {
    await rename(s.dir, finalDir);
  } catch (error) {
    const code = errorCode(error);
    if (code === "ENOTEMPTY" || code === "EEXIST") {
      throw new UsageError(
        `A checkpoint named "${s.name}" exists already: choose another name or rm it`,
      );
    }
    throw error;
  }
  await syncDir(s.store.checkpointsDir);
}
