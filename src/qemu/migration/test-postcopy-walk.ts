/**
 * For tests: walks the main channel of a captured postcopy migration from its header to its
 * EOF (docs/migration-protocol.md §5), which the stream reader, a precopy reader, refuses at
 * the first POSTCOPY_RAM_DISCARD. Built from the reader's own parts (configuration, MEM_SIZE
 * list, RAM records, footers); commands are checked for their framing only. RAM records go to
 * `precopy` until the first DISCARD and to `postcopy` after it. Not part of the public surface.
 */
import { ByteReader, ByteSource } from "../../bytes/index.ts";
import { DecodeError } from "../../errors.ts";
import { encodePing, encodePostcopyListen, encodePostcopyRun } from "./commands.ts";
import { readConfiguration } from "./configuration.ts";
import {
  COMMAND_NAMES,
  Command,
  FILE_MAGIC,
  FILE_VERSION,
  RAM_SECTION_IDSTR,
  Section,
} from "./constants.ts";
import { readFooter, readMemSizeList, readRamRecords } from "./ram-section.ts";
import { RamTracker } from "./ram-tracker.ts";
import type { StreamVisitor } from "./records.ts";

export interface PostcopyWalk {
  /**
   * Every top-level item in order, as text ("PING 2", "DISCARD pc.ram", "RAM PART"); a run
   * of RAM PARTs is one entry, "RAM PART ×n".
   */
  readonly outline: readonly string[];
  /** Offset of the first POSTCOPY_RAM_DISCARD: where the precopy reader stops. */
  readonly firstDiscardAt: number;
  /** The PACKAGED blob's FULL sections (between LISTEN and PING 3 + RUN). */
  readonly packagedSections: Uint8Array;
  readonly streamBytes: number;
}

export async function walkPostcopyStream(
  input: AsyncIterable<Uint8Array>,
  precopy: StreamVisitor,
  postcopy: StreamVisitor,
): Promise<PostcopyWalk> {
  const src = new ByteSource(input);
  const outline: string[] = [];
  const note = (item: string): void => {
    const last = outline.at(-1);
    const run = /^RAM PART(?: ×(\d+))?$/.exec(last ?? "");
    if (item === "RAM PART" && run !== null) {
      outline[outline.length - 1] = `RAM PART ×${Number(run[1] ?? 1) + 1}`;
    } else {
      outline.push(item);
    }
  };
  const header = await src.read(8, "the header");
  if (header.u32() !== FILE_MAGIC || header.u32() !== FILE_VERSION) {
    throw new DecodeError("Not a version 3 QEVM stream", 0);
  }
  let ram: RamTracker | null = null;
  let firstDiscardAt = -1;
  let packagedSections: Uint8Array = new Uint8Array(0);
  for (;;) {
    const at = src.offset;
    const type = (await src.read(1, "an item type")).u8();
    if (type === Section.eof) {
      note("EOF");
      break;
    }
    if (type === Section.configuration) {
      note(`configuration ${(await readConfiguration(src)).machine}`);
    } else if (type === Section.start) {
      const head = await src.read(5, "a START header");
      const sectionId = head.u32();
      const idLength = head.u8();
      const idstr = (await src.read(idLength, "a section name")).latin1(idLength);
      const ids = await src.read(8, "instance and version");
      const info = { sectionId, instanceId: ids.u32(), versionId: ids.u32() };
      if (idstr !== RAM_SECTION_IDSTR) throw new DecodeError(`START for ${idstr}`, at);
      const blocks = await readMemSizeList(src);
      await readFooter(src, sectionId, "RAM START");
      ram = new RamTracker(info, blocks);
      await precopy.ramBlocks(blocks, info);
      await postcopy.ramBlocks(blocks, info);
      note("RAM START");
    } else if ((type === Section.part || type === Section.end) && ram !== null) {
      const sectionId = (await src.read(4, "a section id")).u32();
      await readRamRecords(src, ram, firstDiscardAt < 0 ? precopy : postcopy);
      await readFooter(src, sectionId, "a RAM PART or END");
      note(type === Section.part ? "RAM PART" : "RAM END");
    } else if (type === Section.command) {
      const head = await src.read(4, "a command header");
      const command = head.u16();
      const length = head.u16();
      const payload = (await src.read(length, "a command payload")).slice(length).slice();
      const name = COMMAND_NAMES.get(command) ?? `command ${command}`;
      if (command === Command.ping) {
        note(`PING ${new ByteReader(payload).u32()}`);
      } else if (command === Command.postcopyRamDiscard) {
        if (firstDiscardAt < 0) firstDiscardAt = at;
        const r = new ByteReader(payload);
        r.skip(1); // version
        note(`DISCARD ${r.latin1(r.u8())}`);
      } else if (command === Command.packaged) {
        const blobBytes = new ByteReader(payload).u32();
        const blob = (await src.read(blobBytes, "a PACKAGED blob")).slice(blobBytes).slice();
        packagedSections = unpack(blob, at);
        note("PACKAGED");
      } else {
        note(name);
      }
    } else {
      throw new DecodeError(`Unexpected item type 0x${type.toString(16)}`, at);
    }
  }
  if (!(await src.atEnd())) throw new DecodeError("Bytes after EOF", src.offset);
  return { outline, firstDiscardAt, packagedSections, streamBytes: src.offset };
}

/** The FULL sections of a LISTEN, sections, PING 3, RUN package (§5, as QEMU sends it). */
function unpack(blob: Uint8Array, at: number): Uint8Array {
  const listen = encodePostcopyListen();
  const tail = Buffer.concat([encodePing(3), encodePostcopyRun()]);
  const head = Buffer.from(blob.subarray(0, listen.byteLength));
  const end = Buffer.from(blob.subarray(blob.byteLength - tail.byteLength));
  if (!head.equals(listen) || !end.equals(tail)) {
    throw new DecodeError("PACKAGED is not LISTEN, sections, PING 3, RUN", at);
  }
  return blob.subarray(listen.byteLength, blob.byteLength - tail.byteLength);
}
