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
/** Runs written at once (ADR 0034). */
const WRITES_IN_FLIGHT = 4;

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
  const writes = new WritesInFlight(file);
  let run = writes.buffer();
  let first = -1;
  let pages = 0;
  let visited = 0;
  let zeroPages = 0;
  const flush = async (): Promise<void> => {
    if (pages === 0) return;
    run = await writes.write(run, pages * PAGE_SIZE_BYTES, first * PAGE_SIZE_BYTES);
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
  try {
    await reader.forEachPage(visit, { workers });
    await flush();
  } finally {
    await writes.settle(); // no write may outlive the call: the caller closes the file next
  }
  writes.throwIfFailed();
  return { dataPages: visited - zeroPages, zeroPages };
}

/**
 * Up to WRITES_IN_FLIGHT runs being written at once, each from a buffer of its own. A first
 * write to memory that has settled waits for the host to back it (ADR 0025), so several at a
 * time keep the cores busy (ADR 0034).
 */
class WritesInFlight {
  readonly #file: FileHandle;
  readonly #free: Buffer[] = [];
  readonly #running = new Set<Promise<void>>();
  #failure: unknown = null;

  constructor(file: FileHandle) {
    this.#file = file;
  }

  /** A run buffer to fill. */
  buffer(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafe(WRITE_RUN_PAGES * PAGE_SIZE_BYTES);
  }

  /** Starts writing `length` bytes of `run` at `position`; returns the buffer to fill next. */
  async write(run: Buffer, length: number, position: number): Promise<Buffer> {
    this.throwIfFailed();
    const done = writeFully(this.#file, run, length, position).then(
      () => {
        this.#free.push(run);
      },
      (error: unknown) => {
        this.#failure ??= error;
      },
    );
    const tracked = done.finally(() => this.#running.delete(tracked));
    this.#running.add(tracked);
    if (this.#running.size >= WRITES_IN_FLIGHT) await Promise.race(this.#running);
    this.throwIfFailed();
    return this.buffer();
  }

  /** Waits for every write started, failed or not. */
  async settle(): Promise<void> {
    await Promise.all(this.#running);
  }

  /** Throws the first write's failure, if one failed. */
  throwIfFailed(): void {
    if (this.#failure !== null) throw this.#failure;
  }
}
