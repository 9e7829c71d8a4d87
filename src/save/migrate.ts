/**
 * How QEMU's migration reaches a save: the socket it connects to, and waiting for QEMU to report
 * the migration completed (freezing disks in its pre-switchover pause when asked).
 */
import type { Server, Socket } from "node:net";
import { QemuError } from "../errors.ts";
import { SAVE_CONNECT_TIMEOUT_MS } from "../limits.ts";
import type { ProgressListener } from "../progress.ts";
import type { MigrationInfo, QmpClient } from "../qemu/qmp/index.ts";
import type { DiskFreezer } from "./disk-freeze.ts";
import { continueMigration } from "./source.ts";

/** Listens on the Unix socket `path` (a fresh path in the save's private directory). */
export function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
}

/**
 * The first connection on the server, or a QemuError if QEMU dies or never connects; settles
 * (rejecting) at once when `stop` aborts, so a refused `migrate` leaves no timer behind.
 */
export function acceptOne(server: Server, qmp: QmpClient, stop: AbortSignal): Promise<Socket> {
  const accepted = new Promise<Socket>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new QemuError("QEMU did not connect to the migration socket in time")),
      SAVE_CONNECT_TIMEOUT_MS,
    );
    stop.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new QemuError("The save stopped before QEMU connected"));
    });
    server.once("connection", (socket) => {
      clearTimeout(timer);
      resolve(socket);
    });
    qmp.closed.then(() => {
      clearTimeout(timer);
      reject(new QemuError("QEMU exited before the migration started"));
    });
  });
  accepted.catch(() => undefined); // awaited only once `migrate` was accepted
  return accepted;
}

/**
 * Resolves when QEMU reports the migration completed; failed or cancelled throws. With a
 * freezer, the migration pauses in pre-switchover (vCPUs stopped): the disks are frozen there,
 * at exactly the memory snapshot point, and the migration continues. With `phase`, every poll
 * reports the bytes QEMU has sent as that phase (a spooled save has no receiver to count them).
 */
export async function waitMigrationCompleted(
  qmp: QmpClient,
  freezer: DiskFreezer | null,
  onProgress: ProgressListener | undefined,
  phase?: string,
): Promise<void> {
  const reported = (done: (info: MigrationInfo) => boolean) => (info: MigrationInfo) => {
    const doneBytes = info.ram?.transferred ?? 0;
    if (phase !== undefined) onProgress?.({ phase, doneBytes, totalBytes: null });
    return done(info);
  };
  if (freezer !== null) {
    const until = reported((i) => i.status === "pre-switchover");
    const info = await qmp.waitForMigration({ until });
    const doneBytes = info.ram?.transferred ?? 0;
    onProgress?.({ phase: "freezing disks at switchover", doneBytes, totalBytes: null });
    await freezer.freeze();
    await continueMigration(qmp);
  }
  await qmp.waitForMigration({ until: reported((i) => i.status === "completed") });
}
