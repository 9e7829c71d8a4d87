/**
 * The QEMU side of a save: migration settings that keep the stream in the subset snapwake
 * parses, and putting the source VM back the way it was.
 */
import { MIGRATE_MAX_BANDWIDTH_BYTES_PER_S } from "../limits.ts";
import type { MigrationCapabilityStatus, QmpClient } from "../qemu/qmp/index.ts";

/**
 * Capabilities that change the stream into something the receiver rejects (xbzrle, compress,
 * multifd), that need a second channel or shared memory, or that make QEMU wait for the
 * receiver's answer before it completes (return-path, switchover-ack): a save holds the stream
 * unparsed until QEMU completed (ADR 0033), so nothing would answer. All are off by default; a
 * VM whose user turned one on gets it turned off for the save.
 */
const CAPABILITIES_OFF = [
  "xbzrle",
  "compress",
  "multifd",
  "postcopy-ram",
  "x-ignore-shared",
  "background-snapshot",
  "postcopy-preempt",
  "return-path",
  "switchover-ack",
] as const;

export interface PrepareOptions {
  /**
   * The save freezes disks at the memory snapshot point: when the VM runs, the migration
   * pauses in "pre-switchover" (vCPUs stopped, disks still active) until `continueMigration`.
   * Set (or cleared) on every save: QEMU keeps capabilities between migrations.
   */
  readonly freezeAtSwitchover: boolean;
}

/** Sets up migration for a save; returns whether the VM was running before. */
export async function prepareSourceForSave(qmp: QmpClient, opts: PrepareOptions): Promise<boolean> {
  const status = await qmp.execute("query-status", {});
  const present = await qmp.execute("query-migrate-capabilities", {});
  const known = new Set(present.map((c) => c.capability));
  const capabilities: MigrationCapabilityStatus[] = CAPABILITIES_OFF.filter((c) =>
    known.has(c),
  ).map((capability) => ({ capability, state: false }));
  const pause = opts.freezeAtSwitchover && status.running;
  capabilities.push({ capability: "pause-before-switchover", state: pause });
  await qmp.execute("migrate-set-capabilities", { capabilities });
  // QEMU's default of 128 MiB/s would make a local save needlessly slow.
  await qmp.execute("migrate-set-parameters", {
    "max-bandwidth": MIGRATE_MAX_BANDWIDTH_BYTES_PER_S,
  });
  return status.running;
}

/** After a completed migration the source sits in "postmigrate"; cont brings it back. */
export async function resumeIfWasRunning(qmp: QmpClient, wasRunning: boolean): Promise<void> {
  if (!wasRunning) return;
  const status = await qmp.execute("query-status", {});
  if (!status.running) await qmp.execute("cont", {});
}

/**
 * Lets a migration paused in "pre-switchover" finish. QEMU 7.2's QMP `migrate-continue` is
 * not in the typed command map (src/qemu/qmp/commands.ts); its HMP twin does the same and
 * answers an empty string, or the error text.
 */
export async function continueMigration(qmp: QmpClient): Promise<void> {
  await qmp.execute("migrate-continue", { state: "pre-switchover" });
}

/**
 * Cancels the migration (QEMU then leaves the pre-switchover pause or the postmigrate state)
 * and waits until it no longer runs. Never throws.
 */
export async function cancelMigration(qmp: QmpClient): Promise<void> {
  if (qmp.isClosed()) return;
  try {
    await qmp.execute("migrate_cancel", {});
    await qmp.waitForMigration({ until: (info) => !ACTIVE.has(info.status ?? "none") });
  } catch {
    // No migration to cancel, or it ended otherwise: resuming is what matters.
  }
}

/** The guest running again if it ran before the save. Never throws. */
export async function resumeAfterFailure(qmp: QmpClient, wasRunning: boolean): Promise<void> {
  if (qmp.isClosed()) return;
  try {
    await resumeIfWasRunning(qmp, wasRunning);
  } catch {
    // QEMU died while we cleaned up; the save error already says what went wrong.
  }
}

/** query-migrate states in which the migration still runs; `cont` waits until it left them. */
const ACTIVE = new Set([
  "setup",
  "active",
  "pre-switchover",
  "device",
  "cancelling",
  "wait-unplug",
]);
