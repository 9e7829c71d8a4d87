/**
 * Reads the return path of a lazy restore (docs/migration-protocol.md §4): page requests go
 * to the page server as they arrive; PONGs are ignored; SHUT ends the reading with its
 * status. A channel that ends or breaks before SHUT ends it with null (the fill reports why).
 */
import { QemuError } from "../../errors.ts";
import { ReturnPathReader } from "../../qemu/migration/index.ts";
import { assertNever } from "../../util/index.ts";
import type { PageServer } from "./page-server.ts";

/**
 * What the loop reads of a MigrationChannel (channel.ts): its socket as a byte stream (a test feeds recorded
 * bytes here) and whether it has closed.
 */
export interface ReturnPathChannel {
  readonly socket: AsyncIterable<Uint8Array> & { readonly destroyed: boolean };
  isClosed(): boolean;
}

/** The SHUT status, or null when the channel ended first. Rejects on a malformed message. */
export async function readReturnPath(
  channel: ReturnPathChannel,
  server: PageServer,
): Promise<number | null> {
  const rp = new ReturnPathReader(channel.socket);
  for (;;) {
    let message: Awaited<ReturnType<ReturnPathReader["next"]>>;
    try {
      message = await rp.next();
    } catch (error) {
      if (channel.isClosed() || channel.socket.destroyed) return null; // the fill says why
      throw error;
    }
    if (message === null) return null;
    switch (message.kind) {
      case "req-pages":
        server.request(message.blockName, message.startBytes, message.lengthBytes);
        break;
      case "shut":
        return message.status;
      case "pong":
        break;
      case "recv-bitmap":
      case "resume-ack":
        // Postcopy recovery messages; snapwake never asks for recovery.
        throw new QemuError(`The restoring QEMU sent an unexpected ${message.kind} message`);
      default:
        return assertNever(message, "return-path message");
    }
  }
}
