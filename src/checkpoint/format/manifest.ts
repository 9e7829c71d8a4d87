/**
 * The manifest (docs/format.md §2): the root of trust of a checkpoint.
 *
 *   snapwake-checkpoint 1.<minor>\n
 *   sha256 <hex of sha256(line 1 ‖ body)> <body bytes>\n
 *   <JSON body>\n
 *
 * decodeManifest checks, in this order: size, magic, header lines, body length, hash, version,
 * then fields; so a flipped bit is always "hash mismatch", never "too new".
 */
import crypto from "node:crypto";
import { InvalidCheckpointError } from "../../errors.ts";
import { MANIFEST_BYTES_MAX } from "../../limits.ts";
import {
  FORMAT_MAJOR,
  FORMAT_MINOR,
  formatVersion,
  MANIFEST_HEADER_LINE_BYTES_MAX,
  MANIFEST_MAGIC,
  Minor,
} from "./format.ts";
import type { JsonObject } from "./json-value.ts";
import { validateManifestBody } from "./manifest-fields.ts";

export interface RamBlockInfo {
  readonly name: string;
  readonly lengthBytes: number;
  readonly pageCount: number;
}

/** A file of the checkpoint, checked against these before it is trusted. */
export interface FileRef {
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface ChunksInfo {
  readonly file: string;
  readonly count: number;
  readonly bytes: number;
  readonly codec: "zstd";
  readonly level: number;
  readonly chunkPagesMax: number;
}

/** A frozen disk layer the checkpoint depends on (1.1), in `<home>/layers/`. */
export interface LayerInfo {
  /** 16 hex digits. */
  readonly id: string;
  /** `<id>.qcow2` or `<id>.raw`. */
  readonly file: string;
  readonly format: "qcow2" | "raw";
  /** Size of the file; checked when the checkpoint is opened. */
  readonly bytes: number;
  /** Guest-visible size of the disk. */
  readonly virtualBytes: number;
  /** SHA-256 over the header cluster, L1 and L2 tables; checked before any block is read. */
  readonly metaSha256: string;
  /** SHA-256 over (guest offset, SHA-256) of every non-zero block of the layer's own data. */
  readonly contentSha256: string;
  /** The id of the layer below, or null. */
  readonly backing: string | null;
}

/** A VM drive whose disk state is the checkpoint's (1.1): its frozen chain, top first. */
export interface DiskInfo {
  /** Index into the VM spec's `disks`. */
  readonly drive: number;
  readonly layers: readonly string[];
}

/**
 * Another checkpoint's pack this one shares (1.2): a hard link `pack-<id>.pack` in the
 * checkpoint's directory, so it lives as long as any checkpoint linking it (ADR 0007).
 */
export interface SharedPackInfo {
  /** 16 hex digits: the pack's identity (packIdOf of the checkpoint that wrote it). */
  readonly id: string;
  /** `pack-<id>.pack`. */
  readonly file: string;
  /** Size of the file; checked when the checkpoint is opened. */
  readonly bytes: number;
  /** The checkpoint that wrote the pack (informative: it may be gone). */
  readonly writtenBy: string;
}

/**
 * The QEMU and machine type a checkpoint was saved from (1.3). A restore runs the VM on
 * exactly this machine type (the spec's alias, e.g. `pc`, may resolve differently on another
 * QEMU) and refuses a QEMU that lacks it before starting anything.
 */
export interface RuntimeInfo {
  /** query-version's major.minor.micro, e.g. "7.2.22". */
  readonly qemuVersion: string;
  /** The versioned machine type of the stream's configuration section, e.g. "pc-i440fx-7.2". */
  readonly machineType: string;
}

/** The checkpoint an incremental save started from (informative: it may be gone since). */
export interface ParentInfo {
  readonly name: string;
  readonly createdAt: string;
}

/** docs/format.md §2.1. */
export interface CheckpointStatistics {
  readonly pagesTotal: number;
  readonly pagesZero: number;
  readonly pagesUnsent: number;
  readonly pagesStored: number;
  readonly pagesUnique: number;
  readonly pagesDuplicate: number;
  readonly pagesStale: number;
  readonly slotsUnreferenced: number;
  readonly pagesReceived: number;
  readonly rawBytes: number;
  readonly chunkRawBytes: number;
  readonly chunkStoredBytes: number;
  readonly storedBytes: number;
  readonly compressionRatio: number;
  readonly writeMs: number;
  /** Page-map entries of kind disk duplicate (1.1; 0 before). */
  readonly pagesDisk: number;
  /** Entries of the disk-reference table: distinct page contents not stored. */
  readonly diskRefs: number;
  /** `diskRefs × 4096`: the uncompressed bytes left in the frozen layers. */
  readonly diskRawBytes: number;
  /** Non-zero pages whose content is in a shared pack, not stored again (1.2; 0 before). */
  readonly pagesShared: number;
  /** Chunk-table entries of shared packs (1.2; 0 before). */
  readonly sharedChunks: number;
  /** Stored bytes of those chunks: what reading them costs, not what this checkpoint adds. */
  readonly sharedStoredBytes: number;
}

/**
 * How the pack's chunks are ordered, when a relayout chose it (docs/format.md §2.3). Optional
 * and informative: it changes no byte a reader decodes, so it needs no version bump.
 */
export interface LayoutInfo {
  /** The working set first, in first-access order, then the other pages in the old pack order. */
  readonly kind: "access-order";
  /** Stored pages of the access order placed first (they fill the first chunks). */
  readonly workingSetPages: number;
  /** Where the order came from, e.g. "trace" (a profiling restore's working set). */
  readonly source: string;
}

/** The JSON body, exactly as stored. */
export interface ManifestBody {
  readonly name: string;
  readonly createdAt: string;
  readonly pageSizeBytes: number;
  readonly vm: JsonObject;
  readonly qemu: JsonObject;
  readonly stream: { readonly configuration: string; readonly info: JsonObject };
  readonly ramBlocks: readonly RamBlockInfo[];
  readonly deviceState: FileRef;
  readonly index: FileRef;
  readonly chunks: ChunksInfo;
  readonly statistics: CheckpointStatistics;
  /** Frozen layers (1.1; empty in 1.0, where the field is absent). */
  readonly layers: readonly LayerInfo[];
  /** Drives whose state the checkpoint froze (1.1; empty in 1.0). */
  readonly disks: readonly DiskInfo[];
  /** Absent unless a relayout ordered the pack (informative; older readers ignore it). */
  readonly layout?: LayoutInfo;
  /** Other checkpoints' packs the chunk table names (1.2; empty before, field absent). */
  readonly packs: readonly SharedPackInfo[];
  /** Absent unless saved incrementally (informative; older readers ignore it). */
  readonly parent?: ParentInfo;
  /** The saving QEMU's version and machine type (1.3; absent before). */
  readonly runtime?: RuntimeInfo;
}

/** A decoded manifest: its body plus the format version from line 1. */
export interface Manifest extends ManifestBody {
  readonly format: string;
}

export function sha256Hex(bytes: Uint8Array): string {
  return crypto.hash("sha256", bytes, "hex");
}

/** The version a checkpoint is written as: the lowest whose features it uses. */
export function versionOf(body: ManifestBody): string {
  return `${FORMAT_MAJOR}.${minorOf(body)}`;
}

function minorOf(body: ManifestBody): number {
  if (body.runtime !== undefined) return Minor.runtime;
  if (body.packs.length > 0) return Minor.sharedPacks;
  return body.layers.length > 0 ? Minor.diskLayers : Minor.base;
}

/**
 * The identity of a checkpoint's own pack: the first 16 hex digits of its index's SHA-256,
 * which names every chunk's offset, length and hash. Derived, so 1.0 and 1.1 checkpoints
 * (which record none) have one too, and a relayout's new pack gets a new one.
 */
export function packIdOf(manifest: Pick<ManifestBody, "index">): string {
  return manifest.index.sha256.slice(0, 16);
}

export function encodeManifest(body: ManifestBody): Uint8Array {
  const line1 = Buffer.from(`${MANIFEST_MAGIC}${versionOf(body)}\n`, "utf8");
  const json = Buffer.from(`${JSON.stringify(jsonOf(body), null, 2)}\n`, "utf8");
  const hash = sha256Hex(Buffer.concat([line1, json]));
  const line2 = Buffer.from(`sha256 ${hash} ${json.byteLength}\n`, "utf8");
  return Buffer.concat([line1, line2, json]);
}

/**
 * Each version's fields only: a 1.0 manifest has no layer fields at all, a 1.1 one no pack
 * fields, exactly what a writer of that version wrote.
 */
function jsonOf(body: ManifestBody): object {
  const minor = minorOf(body);
  if (minor >= Minor.sharedPacks) return body;
  const { packs: _k, statistics, ...rest } = body;
  const { pagesShared: _s, sharedChunks: _c, sharedStoredBytes: _y, ...stats11 } = statistics;
  if (minor === Minor.diskLayers) return { ...rest, statistics: stats11 };
  const { layers: _l, disks: _d, ...rest10 } = rest;
  const { pagesDisk: _p, diskRefs: _r, diskRawBytes: _b, ...stats10 } = stats11;
  return { ...rest10, statistics: stats10 };
}

/** Verifies and decodes a manifest; `checkpoint` names it in errors. */
export function decodeManifest(bytes: Uint8Array, checkpoint: string): Manifest {
  const fail = (why: string) => new InvalidCheckpointError(checkpoint, why);
  if (bytes.byteLength > MANIFEST_BYTES_MAX) {
    throw fail(
      `manifest is ${bytes.byteLength} bytes, more than the ${MANIFEST_BYTES_MAX}-byte limit`,
    );
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = Buffer.from(MANIFEST_MAGIC, "latin1");
  if (!buf.subarray(0, magic.byteLength).equals(magic)) {
    throw fail(`manifest does not start with "${MANIFEST_MAGIC}" (not a snapwake checkpoint)`);
  }
  const end1 = lineEnd(buf, 0);
  const end2 = end1 < 0 ? -1 : lineEnd(buf, end1 + 1);
  if (end2 < 0) throw fail("manifest is truncated inside its header lines");
  const line1 = buf.subarray(0, end1 + 1);
  const m = /^sha256 ([0-9a-f]{64}) ([0-9]{1,10})$/.exec(buf.toString("latin1", end1 + 1, end2));
  if (m === null) throw fail("manifest hash line is malformed");
  const body = buf.subarray(end2 + 1);
  const declared = Number(m[2]);
  if (body.byteLength < declared) {
    throw fail(`manifest is truncated: its body has ${body.byteLength} of ${declared} bytes`);
  }
  if (body.byteLength > declared) {
    throw fail(`manifest has ${body.byteLength - declared} bytes after its body`);
  }
  if (sha256Hex(Buffer.concat([line1, body])) !== m[1]) {
    throw fail("manifest hash mismatch (it was modified or corrupted)");
  }
  const format = checkVersion(line1.toString("latin1", magic.byteLength, end1), fail);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch (error) {
    throw new InvalidCheckpointError(checkpoint, "manifest body is not valid JSON", {
      cause: error,
    });
  }
  const minor = Number(format.split(".")[1]);
  return { format, ...validateManifestBody(parsed, fail, minor) };
}

/** Index of the `\n` ending the line that starts at `from`, or -1 if none within the limit. */
function lineEnd(buf: Buffer, from: number): number {
  const at = buf.indexOf(0x0a, from);
  return at < 0 || at - from > MANIFEST_HEADER_LINE_BYTES_MAX ? -1 : at;
}

function checkVersion(text: string, fail: (why: string) => Error): string {
  const m = /^([0-9]{1,5})\.([0-9]{1,5})$/.exec(text);
  if (m === null) throw fail(`manifest version "${text}" is malformed`);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major !== FORMAT_MAJOR || minor > FORMAT_MINOR) {
    throw fail(
      `format ${major}.${minor} is not supported (this snapwake reads ${FORMAT_MAJOR}.0 to ${formatVersion})`,
    );
  }
  return `${major}.${minor}`;
}
