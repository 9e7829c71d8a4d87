/**
 * The shapes the stream reader reports and the stream writer takes: RAM blocks, the RAM
 * section's identity, the opaque device state and the per-stream summary.
 */

/** One RAM block from the MEM_SIZE list: QEMU's idstr and used_length. */
export interface RamBlock {
  readonly name: string;
  readonly lengthBytes: number;
}

/** The RAM section's header fields from its START (reuse them when writing, §1.5). */
export interface RamSectionInfo {
  readonly sectionId: number;
  readonly instanceId: number;
  readonly versionId: number;
}

/**
 * The device state: everything after the final RAM END footer, split per §3.2 item 8.
 * Replayable verbatim into an identically configured destination.
 */
export interface DeviceState {
  /** FULL sections + the 0x00 EOF byte, verbatim. */
  readonly sections: Uint8Array;
  /** The VMDESCRIPTION JSON bytes (without its 0x06 + be32 header), if the stream had one. */
  readonly vmdescription: Uint8Array | null;
}

/**
 * What the stream reader calls, in stream order. A method may return a Promise (the reader
 * then awaits it: backpressure); return nothing on the hot path to avoid an await per page.
 */
export interface StreamVisitor {
  configuration?(config: {
    machine: string;
    /** The whole item including the 0x07 type byte, verbatim. */
    raw: Uint8Array;
  }): void;
  ramBlocks(blocks: readonly RamBlock[], ram: RamSectionInfo): void | Promise<void>;
  /** A PAGE record. `data` is a view valid only during the call: copy what you keep. */
  page(blockIndex: number, pageIndex: number, data: Uint8Array): void | Promise<void>;
  /** A ZERO record: the page is `fill` repeated (QEMU always sends 0). */
  zeroPage(blockIndex: number, pageIndex: number, fill: number): void | Promise<void>;
  deviceState(state: DeviceState): void | Promise<void>;
}

/** Per RAM block totals. "Final" counts apply last-record-wins. */
export interface BlockSummary {
  readonly name: string;
  readonly lengthBytes: number;
  readonly pageRecords: number;
  readonly zeroRecords: number;
  /** Pages whose last record was PAGE, or ZERO with a non-zero fill byte. */
  readonly finalDataPages: number;
  /** Pages whose last record was ZERO with fill 0. */
  readonly finalZeroPages: number;
}

/** A device section's identity (idstr, instance id). */
export interface DeviceSectionName {
  readonly name: string;
  readonly instanceId: number;
}

/**
 * Where the device section names come from: the VMDESCRIPTION JSON (complete, in order); the
 * first FULL section's header only (sections are not length-framed, so no more is safe to
 * say without vmstate knowledge); or none (the device state is a lone EOF).
 */
export type DeviceSectionsSource = "vmdescription" | "first-section" | "none";

export interface StreamSummary {
  readonly version: number;
  /** Machine type from the configuration section; null when the stream has none. */
  readonly machine: string | null;
  readonly ram: RamSectionInfo;
  readonly blocks: readonly BlockSummary[];
  /** PAGE + ZERO records in the stream. */
  readonly records: number;
  readonly streamBytes: number;
  /** Everything after the final RAM END footer (FULL sections, EOF, VMDESCRIPTION item). */
  readonly deviceBlobBytes: number;
  readonly deviceSections: readonly DeviceSectionName[];
  readonly deviceSectionsFrom: DeviceSectionsSource;
  readonly returnPathOpened: boolean;
  /** A POSTCOPY_ADVISE was seen (accepted and ignored: the stream stayed precopy). */
  readonly postcopyAdvised: boolean;
  /**
   * A SWITCHOVER_START command was seen (QEMU ≥ 10.0 sends it before its final RAM and
   * device save, for 10.0+ machine types): accepted and dropped, no destination needs it.
   */
  readonly switchoverStart: boolean;
  /** How the RAM data ended: a RAM END section, or none (a background-snapshot stream). */
  readonly ramEnd: "end" | "background-snapshot";
}
