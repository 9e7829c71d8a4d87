/**
 * LayerFile: one frozen disk layer opened for reading its own guest blocks. A qcow2 layer is
 * mapped through its L1/L2 tables (qcow2.ts); a raw layer maps guest offset = file offset.
 * Backing files are never followed: a block that is not this layer's own data is an error.
 *
 * Identity (docs/adr/0006): `metaSha256` is SHA-256 over the header cluster, the L1 table and
 * every L2 table in L1 order: it changes when the layer is rebased, grows, or maps any cluster
 * elsewhere, and costs a read of the metadata only (8 bytes per 64 KiB cluster). Data bytes
 * are bound per block by the SHA-256 a disk reference carries. Opening with `expect` checks
 * the size and metaSha256 before any block is read.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { readSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { DecodeError } from "../errors.ts";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import { DiskLayerError } from "./layer-error.ts";
import {
  CLUSTER_COMPRESSED,
  CLUSTER_UNALLOCATED,
  CLUSTER_ZERO,
  decodeL2,
  l2OffsetOf,
  parseQcow2Header,
  type Qcow2Header,
} from "./qcow2.ts";

export type LayerFormat = "qcow2" | "raw";

/** What a checkpoint records to recognise a layer again. */
export interface LayerIdentity {
  readonly bytes: number;
  readonly metaSha256: string;
}

/** Where a guest offset's bytes are in this layer. */
export type BlockPlace =
  | { readonly kind: "data"; readonly hostOffset: number }
  | { readonly kind: "zero" | "unallocated" | "compressed" };

/** What mapping a layer's file yields. */
interface Mapped {
  readonly virtualBytes: number;
  readonly clusterBytes: number;
  readonly metaSha256: string;
  readonly backingFile: string | null;
  readonly hosts: Float64Array | null;
}

/** A raw layer is indexed in runs of this size (its "clusters"). */
const WINDOW_BYTES = 64 * 1024;
/** Adjacent blocks read with one pread: a disk chunk's 64 blocks. */
const RUN_BYTES_MAX = 256 * 1024;

export class LayerFile {
  readonly path: string;
  readonly format: LayerFormat;
  readonly bytes: number;
  readonly virtualBytes: number;
  readonly clusterBytes: number;
  readonly metaSha256: string;
  readonly backingFile: string | null;
  readonly #fh: FileHandle;
  /** qcow2: host offset per guest cluster (or a CLUSTER_* code); raw: null. */
  readonly #hosts: Float64Array | null;
  #closed = false;

  private constructor(fh: FileHandle, path: string, format: LayerFormat, bytes: number, m: Mapped) {
    this.#fh = fh;
    this.path = path;
    this.format = format;
    this.bytes = bytes;
    this.virtualBytes = m.virtualBytes;
    this.clusterBytes = m.clusterBytes;
    this.metaSha256 = m.metaSha256;
    this.backingFile = m.backingFile;
    this.#hosts = m.hosts;
  }

  /** Opens and maps `path`; with `expect`, refuses a layer whose size or metadata changed. */
  static async open(path: string, format: LayerFormat, expect?: LayerIdentity): Promise<LayerFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (error) {
      throw new DiskLayerError(path, "the file cannot be opened (was it deleted?)", {
        cause: error,
      });
    }
    try {
      const bytes = (await fh.stat()).size;
      if (expect !== undefined && bytes !== expect.bytes) {
        throw new DiskLayerError(path, `it has ${bytes} bytes, expected ${expect.bytes}`);
      }
      const mapped = format === "raw" ? rawMap(bytes) : await qcow2Map(fh, bytes, path);
      if (expect !== undefined && mapped.metaSha256 !== expect.metaSha256) {
        throw new DiskLayerError(path, "its qcow2 metadata changed since it was frozen");
      }
      return new LayerFile(fh, path, format, bytes, mapped);
    } catch (error) {
      await fh.close();
      throw error;
    }
  }

  /** Where the block at `guestOffset` lives in this layer (its own clusters only). */
  locate(guestOffset: number): BlockPlace {
    assert(Number.isSafeInteger(guestOffset) && guestOffset >= 0, "a guest offset");
    if (guestOffset >= this.virtualBytes) return { kind: "unallocated" };
    if (this.#hosts === null) return { kind: "data", hostOffset: guestOffset };
    const cluster = Math.floor(guestOffset / this.clusterBytes);
    const host = this.#hosts[cluster] ?? CLUSTER_UNALLOCATED;
    if (host === CLUSTER_UNALLOCATED) return { kind: "unallocated" };
    if (host === CLUSTER_ZERO) return { kind: "zero" };
    if (host === CLUSTER_COMPRESSED) return { kind: "compressed" };
    return { kind: "data", hostOffset: host + (guestOffset % this.clusterBytes) };
  }

  /**
   * The 4 KiB guest block at `guestOffset` (a multiple of 4096), read from this layer's own
   * data: one pread. Unverified: the caller checks its hash.
   */
  async readBlock(guestOffset: number): Promise<Uint8Array> {
    return this.readBlocks([guestOffset]);
  }

  /** readBlock, blocking: for a save's confirmation of a candidate, page by page. */
  readBlockSync(guestOffset: number): Uint8Array {
    assert(!this.#closed, "the layer is open");
    const place = this.locate(guestOffset);
    if (guestOffset % PAGE_SIZE_BYTES !== 0 || place.kind !== "data") {
      throw new DiskLayerError(this.path, `guest offset ${guestOffset} is not a data block here`);
    }
    const out = Buffer.alloc(PAGE_SIZE_BYTES); // past the end of the file: zero
    let done = 0;
    while (done < out.byteLength) {
      const n = readSync(this.#fh.fd, out, done, out.byteLength - done, place.hostOffset + done);
      if (n === 0) break;
      done += n;
    }
    return out;
  }

  /**
   * The 4 KiB guest blocks at `guestOffsets`, back to back in that order. Blocks adjacent in
   * the file are read together (up to RUN_BYTES_MAX a read) and the reads run concurrently, so
   * a disk chunk's 64 blocks sorted by offset cost a few preads. Unverified.
   */
  async readBlocks(guestOffsets: readonly number[]): Promise<Buffer> {
    assert(!this.#closed, "the layer is open");
    const hosts = guestOffsets.map((guestOffset) => {
      if (guestOffset % PAGE_SIZE_BYTES !== 0)
        assert.fail(`offset ${guestOffset} is block-aligned`);
      const place = this.locate(guestOffset);
      if (place.kind !== "data") {
        throw new DiskLayerError(this.path, `guest offset ${guestOffset} is ${place.kind} here`);
      }
      return place.hostOffset;
    });
    const out = Buffer.alloc(hosts.length * PAGE_SIZE_BYTES); // past the end of the file: zero
    const reads: Promise<void>[] = [];
    for (let i = 0; i < hosts.length; ) {
      let n = 1;
      const first = hosts[i] ?? 0;
      while (
        i + n < hosts.length &&
        hosts[i + n] === first + n * PAGE_SIZE_BYTES &&
        (n + 1) * PAGE_SIZE_BYTES <= RUN_BYTES_MAX
      ) {
        n++;
      }
      const target = out.subarray(i * PAGE_SIZE_BYTES, (i + n) * PAGE_SIZE_BYTES);
      reads.push(readFully(this.#fh, target, first));
      i += n;
    }
    await Promise.all(reads);
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close();
  }

  /**
   * This layer's own data clusters as [guestOffset, hostOffset, bytes] runs, in host order
   * (qcow2), or the whole file in windows (raw). For sequential indexing.
   */
  dataRuns(): { guestOffset: number; hostOffset: number; bytes: number }[] {
    const runs: { guestOffset: number; hostOffset: number; bytes: number }[] = [];
    if (this.#hosts === null) {
      for (let at = 0; at < this.virtualBytes; at += WINDOW_BYTES) {
        runs.push({
          guestOffset: at,
          hostOffset: at,
          bytes: Math.min(WINDOW_BYTES, this.virtualBytes - at),
        });
      }
      return runs;
    }
    this.#hosts.forEach((host, cluster) => {
      if (host <= 0) return;
      const guestOffset = cluster * this.clusterBytes;
      const bytes = Math.min(this.clusterBytes, this.virtualBytes - guestOffset);
      runs.push({ guestOffset, hostOffset: host, bytes });
    });
    return runs.sort((a, b) => a.hostOffset - b.hostOffset);
  }

  /** Reads `data.byteLength` bytes at `hostOffset` (zeros past the end of the file). */
  async readHost(data: Buffer, hostOffset: number): Promise<void> {
    assert(!this.#closed, "the layer is open");
    await readFully(this.#fh, data, hostOffset);
  }
}

function rawMap(bytes: number): Mapped {
  const metaSha256 = crypto.hash("sha256", `raw ${bytes}`, "hex");
  return {
    virtualBytes: bytes,
    clusterBytes: WINDOW_BYTES,
    metaSha256,
    backingFile: null,
    hosts: null,
  };
}

async function qcow2Map(fh: FileHandle, fileBytes: number, path: string): Promise<Mapped> {
  const fail = (why: string, cause?: unknown) =>
    new DiskLayerError(path, why, cause === undefined ? undefined : { cause });
  const first = Buffer.alloc(Math.min(fileBytes, 2 ** 21));
  await readFully(fh, first, 0);
  let header: Qcow2Header;
  try {
    header = parseQcow2Header(first);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw fail(`it is not a qcow2 image snapwake reads: ${reason}`, error);
  }
  const hash = crypto.createHash("sha256");
  hash.update(first.subarray(0, Math.min(fileBytes, header.clusterBytes)));
  const clusters = Math.ceil(header.virtualBytes / header.clusterBytes);
  const hosts = new Float64Array(clusters);
  const l1 = Buffer.alloc(header.l1Entries * 8);
  if (header.l1Offset % header.clusterBytes !== 0 || header.l1Offset + l1.byteLength > fileBytes) {
    throw fail(`its L1 table at ${header.l1Offset} lies outside the file`);
  }
  await readFully(fh, l1, header.l1Offset);
  hash.update(l1);
  const perTable = header.clusterBytes / 8;
  const table = Buffer.alloc(header.clusterBytes);
  try {
    for (let i = 0; i < header.l1Entries && i * perTable < clusters; i++) {
      const at = header.l1Offset + i * 8;
      const l2 = l2OffsetOf(l1.readBigUInt64BE(i * 8), header, fileBytes, at);
      if (l2 === 0) continue;
      await readFully(fh, table, l2);
      hash.update(table);
      decodeL2(table, l2, i * perTable, hosts, header, fileBytes);
    }
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    throw fail(`its qcow2 tables are malformed: ${error.message}`, error);
  }
  return {
    virtualBytes: header.virtualBytes,
    clusterBytes: header.clusterBytes,
    metaSha256: hash.digest("hex"),
    backingFile: header.backingFile,
    hosts,
  };
}

/** Fills `data` from `position`; what lies past the end of the file stays zero. */
async function readFully(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesRead } = await fh.read(data, done, data.byteLength - done, position + done);
    if (bytesRead === 0) {
      data.fill(0, done);
      return;
    }
    done += bytesRead;
  }
}
