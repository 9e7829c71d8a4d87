/**
 * The migration channel of a lazy restore: one Unix socket to the restoring QEMU carrying the
 * stream one way and the return path (page requests, SHUT) the other (ADR 0004, 0005).
 *
 * Writes never wait: the page server bounds what is queued itself (queuedBytes, whenDrained),
 * so a requested page is written the moment it is ready instead of waiting for a drain that
 * background data caused.
 */
import type { Socket } from "node:net";
import { BufferPool } from "../../bytes/index.ts";
import { RESTORE_WRITE_BATCH_BYTES, RESTORE_WRITE_BUFFERS_KEPT } from "../../limits.ts";
import {
  type ByteSink,
  MigrationStreamWriter,
  type PageEdit,
  streamWriterBufferBytes,
} from "../../qemu/migration/index.ts";
import { connectUnix } from "../../util/index.ts";
import type { ManagedVm } from "../../vm/index.ts";
import type { OutQueue } from "./page-server-deps.ts";

/** Opens the client end of QEMU's `migrate-incoming unix:` socket (a test may wrap it). */
export type ConnectChannel = (path: string) => Promise<Socket>;

export interface MigrationChannel {
  readonly socket: Socket;
  readonly writer: MigrationStreamWriter;
  readonly out: OutQueue;
  /** Settles, never rejects, once the socket has closed: with its error, if it had one. */
  readonly closed: Promise<Error | undefined>;
  isClosed(): boolean;
}

/** Sets `postcopy-ram` on the restoring QEMU, starts its incoming side and connects to it. */
export async function openPostcopyChannel(
  vm: ManagedVm,
  connectChannel: ConnectChannel = connectUnix,
  pageEdit?: PageEdit,
): Promise<MigrationChannel> {
  // Before migrate-incoming: QEMU checks userfaultfd here ("Postcopy is not supported").
  const capabilities = [{ capability: "postcopy-ram" as const, state: true }];
  await vm.qmp.execute("migrate-set-capabilities", { capabilities });
  const path = `${vm.stateDir}/incoming.sock`;
  await vm.qmp.execute("migrate-incoming", { uri: `unix:${path}` });
  return channelOver(await connectChannel(path), pageEdit);
}

/** Wraps a connected socket: a never-waiting writer, the queue view, and close tracking. */
export function channelOver(socket: Socket, pageEdit?: PageEdit): MigrationChannel {
  let closedWith: Error | undefined;
  let isClosed = false;
  const closed = new Promise<Error | undefined>((resolve) => {
    socket.on("error", (error) => {
      closedWith ??= error;
    });
    socket.once("close", () => {
      isClosed = true;
      resolve(closedWith);
    });
  });
  const sink: ByteSink = {
    write(bytes) {
      if (socket.destroyed || socket.writableEnded) {
        throw new Error("Cannot write the migration stream: the channel to QEMU is closed");
      }
      socket.write(bytes); // its return value is ignored: queuedBytes bounds the queue
    },
    writeThen(bytes, done) {
      if (socket.destroyed || socket.writableEnded) {
        throw new Error("Cannot write the migration stream: the channel to QEMU is closed");
      }
      // The callback comes once the kernel has the bytes, or with the error that dropped them.
      socket.write(bytes, () => done());
    },
  };
  let drained: Promise<void> | null = null;
  const out: OutQueue = {
    get queuedBytes() {
      return socket.writableLength;
    },
    whenDrained() {
      // Below the high-water mark no write returned false, so no 'drain' is coming.
      if (socket.writableLength <= socket.writableHighWaterMark || socket.destroyed) {
        return Promise.resolve();
      }
      drained ??= new Promise<void>((resolve) => {
        const done = () => {
          socket.off("drain", done);
          socket.off("close", done);
          drained = null;
          resolve();
        };
        socket.on("drain", done);
        socket.on("close", done);
      });
      return drained;
    },
  };
  return {
    socket,
    // Pooled batch buffers: a page server flushes a small part at a time, and a fresh 256 KiB
    // buffer per part made the garbage collector its biggest cost (ADR 0010).
    writer: new MigrationStreamWriter(sink, {
      batchBytes: RESTORE_WRITE_BATCH_BYTES,
      pool: new BufferPool(
        streamWriterBufferBytes(RESTORE_WRITE_BATCH_BYTES),
        RESTORE_WRITE_BUFFERS_KEPT,
      ),
      ...(pageEdit === undefined ? {} : { pageEdit }),
    }),
    out,
    closed,
    // destroy() marks the socket at once; its 'close' event comes a tick later.
    isClosed: () => isClosed || socket.destroyed,
  };
}
