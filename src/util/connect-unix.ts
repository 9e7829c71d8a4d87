/**
 * Connecting to a Unix socket as a promise: resolves with the connected socket, rejects with
 * the connection error (ENOENT, ECONNREFUSED, …). The error listener is removed on success, so
 * later errors go to the caller's own listeners. No retry and no timeout here: callers that
 * wait for a socket to appear (QMP) retry around it.
 */
import { connect, type Socket } from "node:net";

export function connectUnix(path: string): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}
