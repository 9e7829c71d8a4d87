/**
 * The eager replay: a checkpoint sent to a restoring QEMU as one precopy stream (header,
 * configuration, RAM START, every page in one RAM PART, RAM END, device state).
 *
 * Chunk workers read, decompress and verify chunks ahead while this thread only encodes page
 * records into pooled batch buffers and hands them to the socket (ADR 0002, "Parallel decode"):
 * the work per byte here is a memcpy and a write, so QEMU, the workers and this thread share
 * the cores instead of queueing behind one thread.
 *
 * Invariants: a page reaches the socket only from a chunk that passed its hash check (the walk
 * gives nothing else); a batch buffer is reused only after the socket has handed it to the
 * kernel (BufferPool + writeThen); at most RESTORE_EAGER_QUEUED_BYTES_MAX bytes wait in the
 * socket, then the walk waits for it to drain.
 */
import type { Socket } from "node:net";
import { BufferPool } from "../bytes/index.ts";
import type { CheckpointReader, ChunkWorkers } from "../checkpoint/index.ts";
import {
  PAGE_SIZE_BYTES,
  RESTORE_EAGER_QUEUED_BYTES_MAX,
  RESTORE_PROGRESS_EVERY_PAGES,
} from "../limits.ts";
import type { ProgressListener } from "../progress.ts";
import {
  type ByteSink,
  type DeviceState,
  MigrationStreamWriter,
  type PageEdit,
  streamWriterBufferBytes,
} from "../qemu/migration/index.ts";
import { replayInfo } from "./stream-info.ts";

/** Batch buffers kept for reuse: those queued in the socket plus the one being filled. */
const BATCH_BUFFERS_KEPT =
  Math.ceil(RESTORE_EAGER_QUEUED_BYTES_MAX / streamWriterBufferBytes()) + 2;

export interface SendCounts {
  readonly dataPages: number;
  readonly zeroPages: number;
  /** Migration stream bytes sent to QEMU. */
  readonly streamBytes: number;
}

/** Sends the whole checkpoint on `socket` and ends it; `workers` decode its chunks. */
export async function sendCheckpoint(
  reader: CheckpointReader,
  socket: Socket,
  device: DeviceState,
  opts: {
    readonly workers: ChunkWorkers | null;
    /** Applied to each verified page before it is encoded (the accessed-bit reset). */
    readonly pageEdit?: PageEdit;
    readonly onProgress?: ProgressListener;
  },
): Promise<SendCounts> {
  const { configuration, ram } = replayInfo(reader);
  const pool = new BufferPool(streamWriterBufferBytes(), BATCH_BUFFERS_KEPT);
  const writer = new MigrationStreamWriter(pooledSocketSink(socket), {
    pool,
    ...(opts.pageEdit === undefined ? {} : { pageEdit: opts.pageEdit }),
  });
  const totalBytes = reader.blocks.reduce((sum, b) => sum + b.lengthBytes, 0);
  let dataPages = 0;
  let zeroPages = 0;
  await writer.header();
  if (configuration.byteLength > 0) await writer.configuration(configuration);
  await writer.ramStart(ram, reader.blocks);
  await writer.beginRamPart(ram);
  const visit = (block: number, page: number, data: Uint8Array | null, fill: number) => {
    const sent = dataPages + zeroPages;
    if (sent % RESTORE_PROGRESS_EVERY_PAGES === 0) {
      opts.onProgress?.({ phase: "sending", doneBytes: sent * PAGE_SIZE_BYTES, totalBytes });
    }
    if (data === null) {
      zeroPages += 1;
      return writer.zeroPage(block, page, fill);
    }
    dataPages += 1;
    return writer.page(block, page, data); // copies: the walk reuses the chunk's buffer
  };
  await reader.forEachPage(visit, opts.workers === null ? {} : { workers: opts.workers });
  await writer.endRamSection();
  await writer.beginRamEnd(ram);
  await writer.endRamSection();
  await writer.deviceState(device, { withVmdescription: true });
  await writer.flush();
  socket.end();
  return { dataPages, zeroPages, streamBytes: writer.bytesWritten };
}

/**
 * A ByteSink over the socket that says when the kernel has a batch (so its buffer returns to
 * the pool), and makes the writer wait while more than RESTORE_EAGER_QUEUED_BYTES_MAX bytes
 * are queued in the socket.
 */
export function pooledSocketSink(socket: Socket): ByteSink {
  const assertOpen = (): void => {
    // No 'drain' or 'close' would ever come to end a wait.
    if (socket.destroyed || socket.writableEnded)
      throw new Error("Cannot write the migration stream: the socket to QEMU is closed");
  };
  const wait = (): Promise<void> | undefined => {
    if (socket.writableLength <= RESTORE_EAGER_QUEUED_BYTES_MAX) return undefined;
    return new Promise<void>((resolve, reject) => {
      const settle = (error?: Error): void => {
        socket.off("drain", onDrain);
        socket.off("error", onError);
        socket.off("close", onClose);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onDrain = (): void => settle();
      const onError = (error: Error): void => settle(error);
      const onClose = (): void =>
        settle(new Error("Cannot write the migration stream: the socket to QEMU closed"));
      socket.on("drain", onDrain);
      socket.on("error", onError);
      socket.on("close", onClose);
    });
  };
  return {
    write(bytes) {
      assertOpen();
      socket.write(bytes);
      return wait();
    },
    writeThen(bytes, done) {
      assertOpen();
      socket.write(bytes, () => done()); // called once: written, or the socket failed
      return wait();
    },
  };
}
