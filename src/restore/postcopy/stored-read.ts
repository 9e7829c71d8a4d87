/**
 * The chunk loader's read stage (chunk-loader.ts): a pack chunk's stored bytes into a buffer,
 * asynchronously through libuv's pool (the fill's and the prelude's chunks, and a request's
 * when reads on this thread are shut) or on this thread (a request's, ADR 0029).
 *
 * Invariants: both give the same errors, the reader's own (workerError): a read that fails
 * names the chunk and the pack file, a pack that ends inside the chunk is an invalid
 * checkpoint. Both fill exactly `job.storedBytes` bytes of the buffer or throw. The emulated
 * slow store (read-throttle.ts) slows the asynchronous read only: reads on this thread are
 * shut under it (sync-reads.ts).
 */
import { read } from "node:fs";
import { throttledRead } from "../../checkpoint/index.ts";
import type { LoaderReader } from "./chunk-loader.ts";
import type { Load } from "./load-queue.ts";
import type { SyncReads } from "./sync-reads.ts";

/** Reads into `into` at `position` of `fd`; resolves with the bytes read (0 at end of file). */
export type ReadAt = (fd: number, into: Uint8Array, position: number) => Promise<number>;

type Reader = Pick<LoaderReader, "workerError">;

/** `load`'s stored bytes into `buffer`, through libuv's pool and the emulated store if set. */
export async function readStored(
  reader: Reader,
  load: Load,
  buffer: ArrayBuffer,
  readAt: ReadAt = readAtAsync,
): Promise<void> {
  const { chunk, job } = load;
  const into = new Uint8Array(buffer, 0, job.storedBytes);
  await throttledRead(job.storedBytes, async () => {
    let done = 0;
    while (done < job.storedBytes) {
      let n: number;
      try {
        n = await readAt(job.fd, into.subarray(done), job.offset + done);
      } catch (error) {
        throw reader.workerError(chunk, { id: -1, ok: false, buffer, error: describe(error) });
      }
      if (n === 0) throw reader.workerError(chunk, { id: -1, ok: false, buffer, ended: true });
      done += n;
    }
  });
}

/** `load`'s stored bytes into `buffer` on this thread, through the restore's gate. */
export function readStoredHere(
  reader: Reader,
  load: Load,
  buffer: ArrayBuffer,
  reads: SyncReads,
): void {
  const { chunk, job } = load;
  let n: number;
  try {
    n = reads.read(job.fd, new Uint8Array(buffer, 0, job.storedBytes), job.offset);
  } catch (error) {
    throw reader.workerError(chunk, { id: -1, ok: false, buffer, error: describe(error) });
  }
  if (n < job.storedBytes)
    throw reader.workerError(chunk, { id: -1, ok: false, buffer, ended: true });
}

function readAtAsync(fd: number, into: Uint8Array, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, into, 0, into.byteLength, position, (error, n) => {
      if (error === null) resolve(n);
      else reject(error);
    });
  });
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  return code === undefined ? error.message : `${error.message} (${code})`;
}
