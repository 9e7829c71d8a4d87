/**
 * `snapwake stream inspect FILE`: a JSON-able description of a migration stream (header,
 * configuration, RAM blocks with final page counts, device sections) and its text table.
 * Built on the stream reader, so it validates the whole stream and reads it in one pass with
 * bounded memory.
 */
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import type { DeviceSectionName, DeviceSectionsSource, DeviceState } from "./records.ts";
import { readMigrationStream } from "./stream-reader.ts";

export interface BlockInspection {
  readonly name: string;
  readonly lengthBytes: number;
  readonly pages: number;
  readonly dataPages: number;
  readonly zeroPages: number;
  /** Pages no record mentioned: the destination keeps what it had (zero for guest RAM). */
  readonly unsentPages: number;
  readonly pageRecords: number;
  readonly zeroRecords: number;
}

export interface StreamInspection {
  readonly header: { readonly magic: "QEVM"; readonly version: number };
  readonly configuration: { readonly machine: string; readonly bytes: number } | null;
  readonly ram: {
    readonly sectionId: number;
    readonly instanceId: number;
    readonly versionId: number;
    readonly totalBytes: number;
    readonly records: number;
    readonly end: "end" | "background-snapshot";
  };
  readonly blocks: readonly BlockInspection[];
  readonly deviceState: {
    readonly bytes: number;
    readonly sectionsBytes: number;
    readonly vmdescriptionBytes: number | null;
    readonly sections: readonly DeviceSectionName[];
    readonly sectionsFrom: DeviceSectionsSource;
  };
  readonly returnPathOpened: boolean;
  readonly postcopyAdvised: boolean;
  readonly switchoverStart: boolean;
  readonly streamBytes: number;
}

/** Reads a whole stream and describes it. */
export async function inspectMigrationStream(
  source: AsyncIterable<Uint8Array>,
): Promise<StreamInspection> {
  // Written by the visitor callbacks (an object, so control-flow narrowing does not pin null).
  const seen: { configurationBytes: number; state: DeviceState | null } = {
    configurationBytes: 0,
    state: null,
  };
  const summary = await readMigrationStream(source, {
    configuration: (config) => {
      seen.configurationBytes = config.raw.byteLength;
    },
    ramBlocks: () => undefined,
    page: () => undefined,
    zeroPage: () => undefined,
    deviceState: (state) => {
      seen.state = state;
    },
  });
  const device: DeviceState = seen.state ?? { sections: new Uint8Array(0), vmdescription: null };
  const blocks = summary.blocks.map((b): BlockInspection => {
    const pages = b.lengthBytes / PAGE_SIZE_BYTES;
    return {
      name: b.name,
      lengthBytes: b.lengthBytes,
      pages,
      dataPages: b.finalDataPages,
      zeroPages: b.finalZeroPages,
      unsentPages: pages - b.finalDataPages - b.finalZeroPages,
      pageRecords: b.pageRecords,
      zeroRecords: b.zeroRecords,
    };
  });
  return {
    header: { magic: "QEVM", version: summary.version },
    configuration:
      summary.machine === null
        ? null
        : { machine: summary.machine, bytes: seen.configurationBytes },
    ram: {
      ...summary.ram,
      totalBytes: blocks.reduce((sum, b) => sum + b.lengthBytes, 0),
      records: summary.records,
      end: summary.ramEnd,
    },
    blocks,
    deviceState: {
      bytes: summary.deviceBlobBytes,
      sectionsBytes: device.sections.byteLength,
      vmdescriptionBytes: device.vmdescription?.byteLength ?? null,
      sections: summary.deviceSections,
      sectionsFrom: summary.deviceSectionsFrom,
    },
    returnPathOpened: summary.returnPathOpened,
    postcopyAdvised: summary.postcopyAdvised,
    switchoverStart: summary.switchoverStart,
    streamBytes: summary.streamBytes,
  };
}

/** A human-readable report: summary lines, a RAM block table, the device sections. */
export function formatInspection(desc: StreamInspection): string {
  const lines = [
    `QEMU migration stream, version ${desc.header.version}, ${desc.streamBytes} bytes`,
    `machine: ${desc.configuration?.machine ?? "(no configuration section)"}`,
    `RAM: section ${desc.ram.sectionId}, ${formatBytes(desc.ram.totalBytes)} in ` +
      `${desc.blocks.length} blocks, ${desc.ram.records} records` +
      (desc.ram.end === "background-snapshot" ? " (background snapshot: no RAM END)" : ""),
  ];
  if (desc.returnPathOpened) lines.push("return path: opened");
  if (desc.postcopyAdvised) lines.push("postcopy: advised, not used");
  if (desc.switchoverStart) lines.push("switchover start: marked (QEMU ≥ 10.0)");
  lines.push("", ...table(desc.blocks), "");
  const d = desc.deviceState;
  const vmdesc =
    d.vmdescriptionBytes === null
      ? "no VMDESCRIPTION"
      : `VMDESCRIPTION ${d.vmdescriptionBytes} bytes`;
  lines.push(`device state: ${d.bytes} bytes (sections ${d.sectionsBytes} bytes, ${vmdesc})`);
  const names = d.sections.map((s) => (s.instanceId === 0 ? s.name : `${s.name}#${s.instanceId}`));
  if (d.sectionsFrom === "vmdescription")
    lines.push(`device sections (${names.length}): ${names.join(", ")}`);
  else if (d.sectionsFrom === "first-section")
    lines.push(`first device section: ${names.join("")} (no VMDESCRIPTION to list the rest)`);
  else lines.push("device sections: none");
  return `${lines.join("\n")}\n`;
}

function table(blocks: readonly BlockInspection[]): string[] {
  const header = ["block", "size", "pages", "data", "zero", "unsent", "PAGE recs", "ZERO recs"];
  const rows = blocks.map((b) => [
    b.name,
    formatBytes(b.lengthBytes),
    ...[b.pages, b.dataPages, b.zeroPages, b.unsentPages, b.pageRecords, b.zeroRecords].map(String),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}
