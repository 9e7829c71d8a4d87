/** What `snapwake inspect` shows of a checkpoint: a JSON-able summary and its text form. */
import type { JsonObject } from "../format/json-value.ts";
import type { Manifest } from "../format/manifest.ts";
import type { CheckpointReader } from "./reader.ts";

/** The manifest as inspect shows it: configuration bytes counted, not inlined as base64. */
export interface CheckpointDescription
  extends Omit<Manifest, "stream" | "pageSizeBytes" | "layout"> {
  readonly dir: string;
  readonly stream: { readonly configurationBytes: number; readonly info: JsonObject };
  /** The checkpoint's own files, manifest included (not frozen layers nor shared packs). */
  readonly bytesOnDisk: number;
  /** Shared packs' files (1.2): stored once, by the checkpoint that wrote them. */
  readonly sharedPackBytes: number;
}

export function describeCheckpoint(reader: CheckpointReader): CheckpointDescription {
  const m = reader.manifest;
  const stats = m.statistics;
  return {
    name: m.name,
    dir: reader.dir,
    format: m.format,
    createdAt: m.createdAt,
    vm: m.vm,
    qemu: m.qemu,
    stream: {
      configurationBytes: Buffer.byteLength(m.stream.configuration, "base64"),
      info: m.stream.info,
    },
    ramBlocks: m.ramBlocks,
    deviceState: m.deviceState,
    index: m.index,
    chunks: m.chunks,
    statistics: stats,
    layers: m.layers,
    disks: m.disks,
    packs: m.packs,
    ...(m.parent === undefined ? {} : { parent: m.parent }),
    bytesOnDisk: reader.bytesOnDisk,
    sharedPackBytes: m.packs.reduce((n, p) => n + p.bytes, 0),
  };
}

/** 512 B, 3.5 KiB, 12.0 MiB, 1.5 GiB. */
function size(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let v = bytes;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

export function formatCheckpoint(d: CheckpointDescription): string {
  const s = d.statistics;
  const blocks = d.ramBlocks.map((b) => `${b.name} ${size(b.lengthBytes)}`).join(", ");
  const qemu =
    typeof d.qemu.version === "string"
      ? d.qemu.version
      : JSON.stringify(d.qemu.version ?? "unknown");
  return [
    `checkpoint ${d.name} (format ${d.format}), created ${d.createdAt}`,
    `  dir      ${d.dir}`,
    `  qemu     ${qemu}`,
    `  RAM      ${size(s.rawBytes)} in ${d.ramBlocks.length} block(s): ${blocks}`,
    `  pages    ${s.pagesTotal} total: ${s.pagesZero} zero (${s.pagesUnsent} never sent), ` +
      `${s.pagesStored} stored`,
    `           ${s.pagesUnique} unique contents, ${s.pagesDuplicate} duplicates, ` +
      `${s.pagesStale} overwritten (${s.slotsUnreferenced} stale copies kept)`,
    `  on disk  ${size(d.bytesOnDisk)}, ratio ${s.compressionRatio} ` +
      `(index ${size(d.index.bytes)}, device state ${size(d.deviceState.bytes)})`,
    `  chunks   ${d.chunks.count}, ${size(d.chunks.bytes)} stored, ${size(s.chunkRawBytes)} raw ` +
      `(${d.chunks.codec} level ${d.chunks.level}, up to ${d.chunks.chunkPagesMax} pages each)`,
    ...diskLines(d),
    ...sharedLines(d),
    `  written  in ${s.writeMs} ms`,
  ].join("\n");
}

/** Disk duplicates and the frozen chains, for a 1.1 checkpoint with disks. */
function diskLines(d: CheckpointDescription): string[] {
  if (d.layers.length === 0) return [];
  const s = d.statistics;
  const byId = new Map(d.layers.map((l) => [l.id, l]));
  const chains = d.disks.map((disk) => {
    const chain = disk.layers.map((id) => `${id} (${size(byId.get(id)?.bytes ?? 0)})`);
    return `           drive ${disk.drive}: ${chain.join(" ← ")}`;
  });
  return [
    `  disk     ${s.pagesDisk} pages are blocks of the frozen disk: ${s.diskRefs} distinct, ` +
      `${size(s.diskRawBytes)} not stored`,
    `  layers   ${d.layers.length} frozen, top first:`,
    ...chains,
  ];
}

/** The parent and the shared packs, for an incremental (1.2) checkpoint. */
function sharedLines(d: CheckpointDescription): string[] {
  const s = d.statistics;
  const parent =
    d.parent === undefined ? [] : [`  parent   ${d.parent.name} (${d.parent.createdAt})`];
  if (d.packs.length === 0) return parent;
  return [
    ...parent,
    `  shared   ${s.pagesShared} pages in ${s.sharedChunks} chunks of ${d.packs.length} ` +
      `earlier pack(s), not stored again (${size(s.sharedStoredBytes)} of them read on restore)`,
    ...d.packs.map((p) => `           ${p.file} ${size(p.bytes)}, written by ${p.writtenBy}`),
  ];
}
