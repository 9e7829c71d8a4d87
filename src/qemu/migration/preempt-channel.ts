/**
 * Reads the second channel of a postcopy-preempt migration (docs/migration-protocol.md §6.8,
 * docs/qemu-versions.md): no header, no magic, no section framing, only RAM records —
 *
 *   { be64 (offset | flags), [u8 length, block name unless CONTINUE], 4096-byte page | fill byte }*
 *   [be64 EOS]
 *
 * up to the end of the transport. The channel keeps its own CONTINUE block (its first record
 * names its block). The block list comes from the main channel's RAM START (MEM_SIZE); offsets
 * are checked against it. snapwake never enables preempt: this reads captured streams (tests,
 * scripts/capture-qemu-streams.ts) to show what a 10.0 source puts there.
 */
import { ByteSource } from "../../bytes/index.ts";
import { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { RAM_FLAGS_MASK, RamFlag } from "./constants.ts";
import { type BlockState, RamTracker } from "./ram-tracker.ts";
import type { BlockSummary, RamBlock, RamSectionInfo, StreamVisitor } from "./records.ts";

/** What the preempt channel reports: RAM records, like the main channel's PAGE/ZERO. */
export type PreemptVisitor = Pick<StreamVisitor, "page" | "zeroPage">;

export interface PreemptChannelSummary {
  /** PAGE + ZERO records. */
  readonly records: number;
  readonly blocks: readonly BlockSummary[];
  /** The channel ended with an EOS record (else it ended after a complete record). */
  readonly eos: boolean;
  readonly streamBytes: number;
}

/** The channel has no RAM section: the tracker's section identity is a placeholder. */
const NO_SECTION: RamSectionInfo = { sectionId: 0, instanceId: 0, versionId: 0 };

/**
 * Reads a whole preempt channel, reporting each record to `visitor` with the index of its
 * block in `blocks`. Throws DecodeError/UnsupportedStreamError with the offending offset.
 */
export async function readPreemptChannel(
  source: AsyncIterable<Uint8Array>,
  blocks: readonly RamBlock[],
  visitor: PreemptVisitor,
): Promise<PreemptChannelSummary> {
  const src = new ByteSource(source);
  const ram = new RamTracker(NO_SECTION, blocks);
  let eos = false;
  try {
    while (!(await src.atEnd())) {
      if (eos) throw new DecodeError("Preempt channel continues after its EOS", src.offset);
      eos = await readRecord(src, ram, visitor);
    }
    return { records: ram.records, blocks: ram.summary(), eos, streamBytes: src.offset };
  } finally {
    await src.close();
  }
}

/** Reads one record; true when it was EOS. */
async function readRecord(
  src: ByteSource,
  ram: RamTracker,
  visitor: PreemptVisitor,
): Promise<boolean> {
  const header = await src.read(8, "a preempt RAM record header");
  const at = header.offset;
  const hi = header.u32();
  const lo = header.u32();
  const flags = lo & RAM_FLAGS_MASK;
  const kind = flags & ~RamFlag.continue;
  if (kind === RamFlag.eos) {
    if (hi !== 0 || lo !== RamFlag.eos) {
      throw new DecodeError(`Preempt EOS record carries an offset or other flags`, at);
    }
    return true;
  }
  if (kind !== RamFlag.page && kind !== RamFlag.zero) {
    throw new UnsupportedStreamError(
      `Preempt channel record has flags 0x${flags.toString(16)}: only PAGE, ZERO, ` +
        "CONTINUE and EOS are expected there",
      at,
    );
  }
  const block: BlockState =
    (flags & RamFlag.continue) !== 0 ? ram.continued(at) : await readBlockName(src, ram);
  const pageIndex = block.pageIndex(hi, lo, flags, at);
  if (kind === RamFlag.page) {
    const data = (await src.read(PAGE_SIZE_BYTES, "a preempt page")).slice(PAGE_SIZE_BYTES);
    block.notePage(pageIndex);
    await visitor.page(block.index, pageIndex, data);
  } else {
    const fill = (await src.read(1, "a preempt zero page's fill byte")).u8();
    block.noteZero(pageIndex, fill);
    await visitor.zeroPage(block.index, pageIndex, fill);
  }
  return false;
}

async function readBlockName(src: ByteSource, ram: RamTracker): Promise<BlockState> {
  const at = src.offset;
  const length = (await src.read(1, "a preempt record's block name length")).u8();
  const name = (await src.read(length, "a preempt record's block name")).latin1(length);
  return ram.select(name, at);
}
