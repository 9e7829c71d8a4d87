/**
 * The small precopy stream of a restore whose main RAM block is in place before QEMU loads it:
 * the mapped restore's image (mapped.ts, ADR 0032) or the eager restore's memfd (guest-ram.ts,
 * ADR 0034). It carries every other RAM block, the main block's proven page tables with their
 * Accessed bits cleared (docs/accessed-bits.md), and the device state.
 *
 * Invariant: the block's file is complete before this is called: the page tables are read
 * from it, and what they hold is what the guest gets.
 */
import type { FileHandle } from "node:fs/promises";
import type { CheckpointReader } from "../checkpoint/index.ts";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import { MigrationStreamWriter } from "../qemu/migration/index.ts";
import type { AccessedBitsReset } from "../wss/index.ts";
import type { Opened } from "./eager.ts";
import { replayInfo } from "./stream-info.ts";

export interface StreamBesideBlock {
  readonly bytes: Uint8Array;
  /** Pages in the stream: the other blocks' and the page tables. */
  readonly pagesSent: number;
  /** The other blocks' pages: with data, and zero (or one fill byte). */
  readonly others: { readonly dataPages: number; readonly zeroPages: number };
}

/**
 * The stream beside block `mapped`, in memory (~1 MiB): header, configuration, every RAM
 * block's START, the pages of the other blocks, block `mapped`'s proven page tables (read from
 * `image`, its complete file, and sent with their Accessed bits cleared), RAM END and the
 * device state.
 */
export async function streamBesideBlock(
  opened: Opened,
  mapped: number,
  image: FileHandle,
): Promise<StreamBesideBlock> {
  const { reader, device, reset } = opened;
  const { configuration, ram } = replayInfo(reader);
  const parts: Uint8Array[] = [];
  const keep = (bytes: Uint8Array): void => {
    parts.push(bytes.slice()); // the writer may reuse its batch buffer
  };
  const writer = new MigrationStreamWriter(
    {
      write: keep,
      writeThen: (bytes, done) => {
        keep(bytes);
        done();
      },
    },
    { pageEdit: reset },
  );
  await writer.header();
  if (configuration.byteLength > 0) await writer.configuration(configuration);
  await writer.ramStart(ram, reader.blocks);
  await writer.beginRamPart(ram);
  const others = await sendOtherBlocks(reader, writer, mapped);
  const tablePages = await sendTables(reset, writer, mapped, image);
  await writer.endRamSection();
  await writer.beginRamEnd(ram);
  await writer.endRamSection();
  await writer.deviceState(device, { withVmdescription: true });
  await writer.flush();
  const pagesSent = others.dataPages + others.zeroPages + tablePages;
  return { bytes: Buffer.concat(parts), pagesSent, others };
}

/** Every page of the blocks other than `mapped`, from verified chunks; returns the counts. */
async function sendOtherBlocks(
  reader: CheckpointReader,
  writer: MigrationStreamWriter,
  mapped: number,
): Promise<StreamBesideBlock["others"]> {
  let sent = 0;
  let zeroPages = 0;
  let cachedChunk = -1;
  let cachedPages: Uint8Array[] = [];
  for (const [b, block] of reader.blocks.entries()) {
    if (b === mapped) continue;
    const count = Math.ceil(block.lengthBytes / PAGE_SIZE_BYTES);
    for (let p = 0; p < count; p++, sent++) {
      const at = reader.pageKind(b, p);
      if (at.kind === "zero") {
        await writer.zeroPage(b, p, at.fill);
        zeroPages += 1;
        continue;
      }
      if (cachedChunk !== at.chunk) {
        cachedPages = await reader.readChunk(at.chunk);
        cachedChunk = at.chunk;
      }
      const page = cachedPages[at.slot];
      if (page === undefined) throw new Error(`chunk ${at.chunk} has no slot ${at.slot}`);
      await writer.page(b, p, page); // copied into the writer's batch
    }
  }
  return { dataPages: sent - zeroPages, zeroPages };
}

/** The mapped block's proven page-table pages, read from the image; returns the count. */
async function sendTables(
  reset: AccessedBitsReset,
  writer: MigrationStreamWriter,
  mapped: number,
  image: FileHandle,
): Promise<number> {
  const pages = reset.pagesOf(mapped);
  const page = Buffer.alloc(PAGE_SIZE_BYTES);
  for (const p of pages) {
    const { bytesRead } = await image.read(page, 0, PAGE_SIZE_BYTES, p * PAGE_SIZE_BYTES);
    if (bytesRead !== PAGE_SIZE_BYTES) throw new Error(`The RAM image ends before page ${p}`);
    await writer.page(mapped, p, page); // the writer's pageEdit clears the Accessed bits
  }
  return pages.length;
}
