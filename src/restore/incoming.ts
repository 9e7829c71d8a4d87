/**
 * The connection an eager restore streams the checkpoint on (ADR 0030): a loopback TCP
 * connection this process makes to itself before QEMU starts. QEMU gets one end at spawn, as
 * its file descriptor QEMU_INCOMING_FD (src/vm/launcher.ts), and loads from it
 * (`migrate-incoming fd:3`); this process writes the stream into the other.
 *
 * Why TCP: a Unix stream socket holds ~208 KiB (the sender's default SO_SNDBUF, which Node
 * cannot raise), under a millisecond of QEMU's loading on the bench hosts, so QEMU's loading
 * thread waited ~30 % of the stream for this process to wake up and write again. Loopback TCP
 * grows its buffers to megabytes. Why a pair made here: a port QEMU listened on could be
 * reached first by any local user. The pair's listener is this process's, open only until its
 * own connection arrives, and it takes only the connection whose source port is that of its
 * own client; any other is dropped.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { QemuError } from "../errors.ts";
import { INCOMING_PAIR_TIMEOUT_MS } from "../limits.ts";

const LOOPBACK = "127.0.0.1";

export interface IncomingPair {
  /** This process's end: the stream is written here. Errors are swallowed (see below). */
  readonly ours: Socket;
  /** QEMU's end, passed to it at spawn; this process closes its copy once QEMU runs. */
  readonly qemuEnd: Socket;
}

/**
 * Makes the pair. `ours` swallows its errors: QEMU may die at any time, and a failed write
 * still fails the send (its callback and the drain wait see it). `beforeConnect` runs once the
 * listener has its port, before this process connects (tests connect a stranger first).
 */
export async function incomingPair(
  beforeConnect?: (port: number) => Promise<unknown>,
): Promise<IncomingPair> {
  const server = createServer({ pauseOnConnect: true }); // QEMU's end is never read here
  const accepted: Socket[] = [];
  let take: (() => void) | null = null;
  server.on("connection", (s) => {
    accepted.push(s);
    take?.();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, LOOPBACK, () => resolve());
    });
    await beforeConnect?.(portOf(server));
    const ours = await connectTo(portOf(server));
    ours.on("error", () => undefined);
    const qemuEnd = await new Promise<Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        ours.destroy();
        reject(new QemuError(`No loopback connection within ${INCOMING_PAIR_TIMEOUT_MS} ms`));
      }, INCOMING_PAIR_TIMEOUT_MS);
      take = () => {
        while (accepted.length > 0) {
          const s = accepted.shift() as Socket;
          if (s.remoteAddress === LOOPBACK && s.remotePort === ours.localPort) {
            clearTimeout(timer);
            resolve(s);
            return;
          }
          s.destroy(); // not this process's connection
        }
      };
      take();
    });
    ours.setNoDelay(true); // the stream's last bytes are not held back
    return { ours, qemuEnd };
  } finally {
    server.close();
    for (const s of accepted) s.destroy();
  }
}

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address !== "object")
    throw new QemuError("The loopback listener for QEMU's stream has no port");
  return address.port;
}

function connectTo(port: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const s = connect({ host: LOOPBACK, port });
    const failed = (error: Error) =>
      reject(
        new QemuError(`Cannot connect to this process's loopback listener (${error.message})`, {
          cause: error,
        }),
      );
    s.once("connect", () => {
      s.off("error", failed);
      resolve(s);
    });
    s.once("error", failed);
  });
}
