/**
 * The subset of qcow2 (QEMU docs/interop/qcow2.txt, versions 2 and 3) that snapwake reads:
 * the header and the active L1/L2 tables, enough to find where a layer's *own* guest
 * clusters live in its file. Backing files are never followed: a disk reference names one
 * layer, and only that layer's allocated data clusters are indexed or read.
 *
 * Refused, because reading them right needs more than this: encryption, external data files,
 * extended L2 entries (subclusters), a header marked corrupt. Compressed clusters are mapped
 * as such and skipped by the index, so they are never referenced.
 */
import { ByteReader } from "../bytes/index.ts";
import { DecodeError } from "../errors.ts";
import { LAYER_GUEST_CLUSTERS_MAX, QCOW2_L1_BYTES_MAX } from "../limits.ts";

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
/** Version 2 headers end here; version 3 says its own length (≥ 104). */
const HEADER_V2_BYTES = 72;
/** QEMU accepts cluster_bits 9 (512 B) to 21 (2 MiB). */
const CLUSTER_BITS_MIN = 9;
const CLUSTER_BITS_MAX = 21;
const BACKING_NAME_BYTES_MAX = 1023;

/** Incompatible feature bits (header v3, offset 72). */
const Incompatible = {
  dirty: 1n << 0n,
  corrupt: 1n << 1n,
  externalData: 1n << 2n,
  compressionType: 1n << 3n,
  extendedL2: 1n << 4n,
} as const;
const KNOWN_INCOMPATIBLE =
  Incompatible.dirty |
  Incompatible.corrupt |
  Incompatible.externalData |
  Incompatible.compressionType |
  Incompatible.extendedL2;

/** L1 and standard L2 entries: bits 9–55 are a host offset; bit 62 compressed; bit 0 zero. */
const OFFSET_MASK = 0x00ff_ffff_ffff_fe00n;
const L2_COMPRESSED = 1n << 62n;
const L2_ZERO = 1n;

export interface Qcow2Header {
  readonly version: 2 | 3;
  readonly clusterBits: number;
  readonly clusterBytes: number;
  /** The guest-visible size (virtual disk size). */
  readonly virtualBytes: number;
  readonly l1Entries: number;
  readonly l1Offset: number;
  /** The backing file name as written in the image, or null for a standalone image. */
  readonly backingFile: string | null;
  /** Bytes of the header proper (72 for v2). */
  readonly headerBytes: number;
}

/** Thrown with `DecodeError` for bytes that are not a qcow2 header; `Error` for unsupported. */
export function parseQcow2Header(bytes: Uint8Array): Qcow2Header {
  const r = new ByteReader(bytes);
  if (r.u32() !== QCOW2_MAGIC) throw new DecodeError("not a qcow2 image (bad magic)", 0);
  const version = r.u32();
  if (version !== 2 && version !== 3) throw new DecodeError(`qcow2 version ${version}`, 4);
  const backingOffset = r.u64Number("backing file offset");
  const backingBytes = r.u32();
  const clusterBits = r.u32();
  const virtualBytes = r.u64Number("size");
  const cryptMethod = r.u32();
  const l1Entries = r.u32();
  const l1Offset = r.u64Number("L1 table offset");
  r.skip(HEADER_V2_BYTES - r.position); // refcounts and internal snapshots: not needed
  let headerBytes = HEADER_V2_BYTES;
  if (version === 3) {
    const incompatible = r.u64();
    r.skip(16 + 4); // compatible, autoclear, refcount_order
    headerBytes = r.u32();
    checkIncompatible(incompatible);
  }
  if (clusterBits < CLUSTER_BITS_MIN || clusterBits > CLUSTER_BITS_MAX) {
    throw new DecodeError(`cluster_bits ${clusterBits} is outside 9..21`, 20);
  }
  if (cryptMethod !== 0) throw new Error("the image is encrypted");
  if (backingBytes > BACKING_NAME_BYTES_MAX) {
    throw new DecodeError(`backing file name of ${backingBytes} bytes`, 16);
  }
  const clusterBytes = 2 ** clusterBits;
  if (l1Entries * 8 > QCOW2_L1_BYTES_MAX) throw new DecodeError(`L1 of ${l1Entries} entries`, 36);
  if (Math.ceil(virtualBytes / clusterBytes) > LAYER_GUEST_CLUSTERS_MAX) {
    throw new Error(`the virtual size ${virtualBytes} has too many clusters to map`);
  }
  const backingFile =
    backingOffset === 0
      ? null
      : new ByteReader(bytes).slice(backingOffset + backingBytes).subarray(backingOffset);
  return {
    version,
    clusterBits,
    clusterBytes,
    virtualBytes,
    l1Entries,
    l1Offset,
    backingFile: backingFile === null ? null : Buffer.from(backingFile).toString("utf8"),
    headerBytes,
  };
}

function checkIncompatible(bits: bigint): void {
  const unsupported: string[] = [];
  if ((bits & ~KNOWN_INCOMPATIBLE) !== 0n) unsupported.push("unknown incompatible features");
  if ((bits & Incompatible.corrupt) !== 0n) unsupported.push("it is marked corrupt");
  if ((bits & Incompatible.externalData) !== 0n) unsupported.push("an external data file");
  if ((bits & Incompatible.extendedL2) !== 0n) unsupported.push("extended L2 entries");
  if (unsupported.length > 0) throw new Error(`unsupported qcow2: ${unsupported.join(", ")}`);
}

/** Where guest cluster c lives: CLUSTER_ZERO, CLUSTER_UNALLOCATED, CLUSTER_COMPRESSED, or ≥ 1. */
export const CLUSTER_UNALLOCATED = 0;
export const CLUSTER_ZERO = -1;
export const CLUSTER_COMPRESSED = -2;

/**
 * Decodes one L2 table into `hostOffsets` (one entry per guest cluster, starting at `first`).
 * `fileBytes` bounds every host offset: a data cluster must lie wholly inside the file.
 */
export function decodeL2(
  table: Uint8Array,
  tableOffset: number,
  first: number,
  hostOffsets: Float64Array,
  header: Qcow2Header,
  fileBytes: number,
): void {
  const r = new ByteReader(table, tableOffset);
  for (let i = 0; r.remaining >= 8 && first + i < hostOffsets.length; i++) {
    const at = r.offset;
    const entry = r.u64();
    let value = CLUSTER_UNALLOCATED;
    if ((entry & L2_COMPRESSED) !== 0n) value = CLUSTER_COMPRESSED;
    else if (header.version === 3 && (entry & L2_ZERO) !== 0n) value = CLUSTER_ZERO;
    else value = checkedHost(Number(entry & OFFSET_MASK), header, fileBytes, "L2", at);
    hostOffsets[first + i] = value;
  }
}

/** The L2 table offset of an L1 entry, 0 when the L2 table is unallocated. */
export function l2OffsetOf(l1Entry: bigint, header: Qcow2Header, fileBytes: number, at: number) {
  return checkedHost(Number(l1Entry & OFFSET_MASK), header, fileBytes, "L1", at);
}

/** A host cluster offset from a table: 0 (none) or cluster-aligned and inside the file. */
function checkedHost(
  host: number,
  header: Qcow2Header,
  fileBytes: number,
  table: string,
  at: number,
) {
  if (host === 0) return 0;
  if (host % header.clusterBytes !== 0 || host >= fileBytes) {
    throw new DecodeError(`${table} entry points to host offset ${host}, outside the file`, at);
  }
  return host;
}
