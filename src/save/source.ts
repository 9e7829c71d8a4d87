/**
 * The QEMU side of a save: migration settings that keep the stream in the subset snapwake
 * parses, and putting the source VM back the way it was.
 */
import { MIGRATE_MAX_BANDWIDTH_BYTES_PER_S } from "../limits.ts";
import type { QmpClient } from "../qemu/qmp/index.ts";

/**
 * Capabilities that change the stream into something the receiver rejects (xbzrle, compress,
 * multifd) or that need a second channel or shared memory. All are off by default; a VM whose
 * user turned one on gets it turned off for the save.
 */
const CAPABILITIES_OFF = [
  "xbzrle",
  "compress",
  "multifd",
  "postcopy-ram",
  "x-ignore-shared",
  "background-snapshot",
  "postcopy-preempt",
] as const;

/** Sets up migration for a save; returns whether the VM was running before. */
export async function prepareSourceForSave(qmp: QmpClient): Promise<boolean> {
  const status = await qmp.execute("query-status", {});
  const present = await qmp.execute("query-migrate-capabilities", {});
  const known = new Set(present.map((c) => c.capability));
  const capabilities = CAPABILITIES_OFF.filter((c) => known.has(c)).map((capability) => ({
    capability,
    state: false,
  }));
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
