/**
 * One RAM block's verified pages written into a file at their offsets (`page × 4 KiB`): the
 * mapped restore's image (ram-image.ts, ADR 0032) and the eager restore's guest RAM (QEMU's
 * memfd, guest-ram.ts, ADR 0034). Pages come from the checkpoint reader, whose chunks are
 * hash-checked before any page of them is handed out; runs of adjacent pages go in one write.
 *
 * Invariant: a zero page is not written (the file is new and reads zeros there: a hole), so
 * the caller gives a file that holds only zeros, e.g. one just truncated to the block's length.
 */
import type { FileHandle } from "node:fs/promises";
import { throwIfAborted } from "../abort.ts";
import type { CheckpointReader, ChunkWorkers } from "../checkpoint/index.ts";
import { writeFully } from "../checkpoint/store/store-io.ts";
import { PAGE_SIZE_BYTES, RESTORE_PROGRESS_EVERY_PAGES } from "../limits.ts";
import type { ProgressListener } from "../progress.ts";

/** Pages gathered into one write while their addresses run on (1 MiB). */
const WRITE_RUN_PAGES = 256;

export interface BlockPagesSource {
  readonly reader: CheckpointReader;
  readonly blockIndex: number;
  /** `{ phase, doneBytes, totalBytes }` every RESTORE_PROGRESS_EVERY_PAGES pages visited. */
  readonly onProgress?: ProgressListener | undefined;
  /** The progress phase's name, e.g. "building the RAM image". */
  readonly phase: string;
}

export interface BlockPagesWritten {
  /** Pages with data (a fill byte other than zero counts as data). */
  readonly dataPages: number;
  /** Zero pages, left as holes. */
  readonly zeroPages: number;
}

/** Writes block `blockIndex` of `source.reader` into `file`; `totalBytes` is its length. */
export async function writeBlockPages(
  file: FileHandle,
  source: BlockPagesSource,
  totalBytes: number,
  workers: ChunkWorkers,
  signal: AbortSignal | undefined,
): Promise<BlockPagesWritten> {
  const { reader, blockIndex, onProgress, phase } = source;
  const run = Buffer.allocUnsafe(WRITE_RUN_PAGES * PAGE_SIZE_BYTES);
  let first = -1;
  let pages = 0;
  let visited = 0;
  let zeroPages = 0;
  const flush = async (): Promise<void> => {
    if (pages === 0) return;
    await writeFully(file, run, pages * PAGE_SIZE_BYTES, first * PAGE_SIZE_BYTES);
    pages = 0;
  };
  const visit = async (block: number, page: number, data: Uint8Array | null, fill: number) => {
    if (block !== blockIndex) return;
    if (visited++ % RESTORE_PROGRESS_EVERY_PAGES === 0) {
      onProgress?.({ phase, doneBytes: (visited - 1) * PAGE_SIZE_BYTES, totalBytes });
    }
    if (data === null && fill === 0) {
      zeroPages += 1; // a hole
      return;
    }
    if (pages > 0 && (page !== first + pages || pages === WRITE_RUN_PAGES)) await flush();
    if (pages === 0) {
      throwIfAborted(signal);
      first = page;
    }
    const at = pages * PAGE_SIZE_BYTES;
    if (data === null) run.fill(fill, at, at + PAGE_SIZE_BYTES);
    else run.set(data, at);
    pages += 1;
  };
  await reader.forEachPage(visit, { workers });
  await flush();
  return { dataPages: visited - zeroPages, zeroPages };
}
