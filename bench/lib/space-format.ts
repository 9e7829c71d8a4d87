/**
 * The `bench space` table: per guest, bytes and save time of each way to checkpoint it, as
 * ratios to QEMU's raw stream, to that stream through zstd -1, and to QEMU's migrate time,
 * with Park et al.'s published reduction as the reference row.
 */
import { FREED_MIB, type SaveMeasure, type SnapwakeRow, type SpaceGuestResult } from "./space.ts";

/**
 * Park et al. (IEEE TC 2016, PV Linux guests; docs/papers.md §3): disk-duplicate exclusion
 * stored 86% less data and took 73% less time than Xen's own save of the same guest.
 */
export const PARK_TC16 = { bytesReduction: 0.86, timeReduction: 0.73 } as const;

const SNAPWAKE_LABELS: Readonly<Record<SnapwakeRow, string>> = {
  plain: "snapwake, every page (diskDuplicates: false)",
  dedup: "snapwake, disk references (default)",
  incremental: "snapwake, incremental",
  freed: `snapwake, disk references, guest freed ${FREED_MIB} MiB`,
  reported: `  … same, with free page reporting`,
};
const HEADER = [
  "",
  "bytes",
  "/ raw stream",
  "vs raw",
  "/ zstd -1",
  "save time",
  "/ QEMU migrate",
] as const;
type Row = readonly string[];

/** Both guests' figures in one table, one block per guest, then what the references saved. */
export function formatSpaceBench(
  results: readonly SpaceGuestResult[],
  laterSeconds: number,
): string {
  const rows: Row[] = [HEADER];
  const notes: string[] = [];
  for (const r of results) {
    rows.push([], [guestLine(r)], ...guestRows(r, laterSeconds));
    notes.push(referencesNote(r));
  }
  rows.push(
    [],
    [
      "Park et al. TC'16, PV Linux, vs Xen's own save",
      "",
      ratio(1 - PARK_TC16.bytesReduction),
      percent(-PARK_TC16.bytesReduction),
      "",
      "",
      ratio(1 - PARK_TC16.timeReduction),
    ],
  );
  return [...table(rows), "", ...notes].join("\n");
}

function guestLine(r: SpaceGuestResult): string {
  const g = r.guest;
  return (
    `${g.kind} guest: ${g.memoryMiB} MiB RAM, ${g.anonMiB} MiB anonymous, ` +
    `${mib(g.dataFileBytes)} of files read (${g.filesOk} ok, ${g.filesBad} bad), ` +
    `page cache ${mib(g.pageCacheBytes)}`
  );
}

function guestRows(r: SpaceGuestResult, laterSeconds: number): Row[] {
  const q = r.qemu;
  const measured = (label: string, bytes: number, ms: number): Row => [
    `  ${label}`,
    mib(bytes),
    ratio(bytes / q.streamBytes),
    percent(bytes / q.streamBytes - 1),
    ratio(bytes / q.zstdBytes),
    seconds(ms),
    ratio(ms / q.saveMs),
  ];
  const snapwake = (row: SnapwakeRow, m: SaveMeasure | null): Row => {
    const label =
      row === "incremental" ? `${SNAPWAKE_LABELS[row]}, +${laterSeconds} s` : SNAPWAKE_LABELS[row];
    return m === null ? [`  ${label}`, "n/a"] : measured(label, m.bytes, m.saveMs);
  };
  return [
    measured("QEMU migrate to a file, raw stream", q.streamBytes, q.saveMs),
    measured(`QEMU migrate, then ${q.zstdTool}`, q.zstdBytes, q.saveMs + q.zstdMs),
    snapwake("plain", r.snapwake.plain),
    snapwake("dedup", r.snapwake.dedup),
    snapwake("incremental", r.snapwake.incremental),
    snapwake("freed", r.snapwake.freed),
    snapwake("reported", r.snapwake.reported),
  ];
}

/** Park's technique on its own: the reference checkpoint against the every-page one. */
function referencesNote(r: SpaceGuestResult): string {
  const { plain, dedup } = r.snapwake;
  const d = r.diskRefs;
  const alone =
    plain === null || dedup === null
      ? "n/a"
      : `${percent(dedup.bytes / plain.bytes - 1)} bytes, ${percent(dedup.saveMs / plain.saveMs - 1)} time`;
  return (
    `${r.guest.kind}: disk references alone ${alone} vs every page ` +
    `(Park: ${percent(-PARK_TC16.bytesReduction)}, ${percent(-PARK_TC16.timeReduction)});\n` +
    `  ${d.pagesDisk} pages (${mib(d.diskRawBytes)}) as references: ` +
    `${share(d.pagesDisk, d.dataFilePages)} of the data files' ${d.dataFilePages} pages, ` +
    `${share(d.pagesDisk, d.diskBlocks)} of the disk's ${d.diskBlocks} distinct non-zero blocks; ` +
    `${d.pagesStored} of ${d.pagesNonZero} non-zero guest pages stored`
  );
}

function table(rows: readonly Row[]): string[] {
  const widths = HEADER.map((_, i) =>
    Math.max(...rows.filter((row) => row.length > 1).map((row) => row[i]?.length ?? 0)),
  );
  return rows.map((row) =>
    row.length <= 1
      ? (row[0] ?? "")
      : row
          .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
          .join("  ")
          .trimEnd(),
  );
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}
function ratio(x: number): string {
  return `${x.toFixed(2)}×`;
}
function percent(x: number): string {
  return `${x < 0 ? "−" : "+"}${Math.abs(100 * x).toFixed(0)}%`;
}
function share(part: number, whole: number): string {
  return whole === 0 ? "n/a" : `${((100 * part) / whole).toFixed(1)}%`;
}
