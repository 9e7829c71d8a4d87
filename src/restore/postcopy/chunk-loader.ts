/**
 * The page server's chunk loader: pack chunks are read, decompressed and verified in chunk
 * worker threads (chunk-workers.ts, as eager restore does), so the main thread keeps answering
 * requests for cached pages while a chunk is decoded; a disk chunk (or a reader without
 * workers) is read and verified on the main thread as before.
 *
 * Invariants: a chunk's pages come back only after the worker checked its hash (the reader's
 * own decode code); a failed decode rejects with the reader's error naming the chunk. Reads
 * still go through the emulated slow store when one is set (read-throttle.ts): the worker's
 * job is started when the throttle lets the read through.
 */
import { type CheckpointReader, ChunkWorkers, throttledRead } from "../../checkpoint/index.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import type { ChunkLoader } from "./chunk-cache.ts";

export class WorkerChunkLoader implements ChunkLoader {
  readonly #reader: CheckpointReader;
  readonly #workers: ChunkWorkers;

  constructor(reader: CheckpointReader, workers: number) {
    this.#reader = reader;
    this.#workers = ChunkWorkers.start(workers);
  }

  readStoredChunk(chunk: number): Promise<Uint8Array> {
    return this.#reader.readStoredChunk(chunk);
  }

  decodeChunk(chunk: number, stored: Uint8Array): Uint8Array[] {
    return this.#reader.decodeChunk(chunk, stored);
  }

  loadOffThread(chunk: number): Promise<{ pages: Uint8Array[]; storedBytes: number }> | null {
    const job = this.#reader.decodeJobOf(chunk);
    if (job === null) return null;
    // One buffer per chunk, held by the cache while the chunk is: pages are views into it.
    const buffer = new ArrayBuffer(job.pageCount * PAGE_SIZE_BYTES);
    return throttledRead(job.storedBytes, () =>
      this.#workers.run({ kind: "decode", ...job, buffer, wantDigests: false }),
    ).then((reply) => {
      if (!reply.ok) throw this.#reader.workerError(chunk, reply);
      const pages: Uint8Array[] = [];
      for (let s = 0; s < job.pageCount; s++)
        pages.push(new Uint8Array(reply.buffer, s * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES));
      return { pages, storedBytes: job.storedBytes };
    });
  }

  /** Ends the worker threads; loads still running reject. */
  close(): Promise<void> {
    return this.#workers.close();
  }
}
