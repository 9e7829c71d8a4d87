/**
 * Whether a save may run live (precopy with the guest running) on this QEMU. QEMU before 9.0
 * under TCG loses dirty pages during a live migration: the dirty-bitmap sync's fast path
 * (cpu_physical_memory_sync_dirty_bitmap) clears a page's dirty bit without resetting the
 * TLB entries that let the vCPU write it unnoticed, so a write after a sync may never be
 * re-sent (fixed upstream in 9.0, commit 03bfc2188f). The checkpoint is then inconsistent
 * and nothing detects it. On such a QEMU a save pauses the guest for its duration instead
 * (ADR 0011): no guest write can happen while pages are being sent.
 *
 * Invariant: a live save happens only on a QEMU whose dirty tracking is sound (≥ 9.0, or
 * KVM, whose dirty log is the kernel's and does not take that path).
 */
import type { RuntimeInfo } from "../checkpoint/index.ts";
import type { QmpClient } from "../qemu/qmp/index.ts";
import type { Accel } from "../vm/index.ts";

/** The first QEMU release whose TCG dirty tracking keeps every write (03bfc2188f). */
export const TCG_DIRTY_SYNC_FIXED = { major: 9, minor: 0 } as const;

interface QemuVersion {
  readonly major: number;
  readonly minor: number;
  readonly micro: number;
}

/**
 * The manifest's `runtime` (format 1.3) for a save by QEMU `qemu` of a stream whose
 * configuration names `machine`: restore pins that type and refuses a QEMU that lacks it.
 */
export function runtimeOf(qemu: QemuVersion, machine: string): { runtime?: RuntimeInfo } {
  if (machine === "") return {};
  return {
    runtime: { qemuVersion: `${qemu.major}.${qemu.minor}.${qemu.micro}`, machineType: machine },
  };
}

/**
 * Decides the save's mode (saveModeFor, with QEMU's query-version) and, when it is not live,
 * stops the guest if it runs; `stoppedGuest` says whether this call stopped it. "unsafe" skips
 * the check and saves live on any QEMU: only for measuring what the pause prevents.
 */
export async function enterSaveMode(
  qmp: QmpClient,
  accel: Accel,
  liveAsked: boolean | "unsafe",
): Promise<SaveMode & { readonly stoppedGuest: boolean }> {
  if (liveAsked === "unsafe") return { live: true, pausedBecause: null, stoppedGuest: false };
  const mode = saveModeFor((await qmp.execute("query-version")).qemu, accel, liveAsked);
  if (mode.live) return { ...mode, stoppedGuest: false };
  const status = await qmp.execute("query-status");
  if (status.running) await qmp.execute("stop");
  return { ...mode, stoppedGuest: status.running };
}

/** How a save ran, and why when it was not live although asked to be. */
export interface SaveMode {
  readonly live: boolean;
  /** Set when a live save was asked for but the guest was paused instead. */
  readonly pausedBecause: string | null;
}

/** The save's mode on QEMU `qemu` (query-version): live when asked and safe, else paused. */
export function saveModeFor(qemu: QemuVersion, accel: Accel, liveAsked: boolean): SaveMode {
  if (!liveAsked) return { live: false, pausedBecause: null };
  if (accel !== "tcg") return { live: true, pausedBecause: null };
  const fixed =
    qemu.major > TCG_DIRTY_SYNC_FIXED.major ||
    (qemu.major === TCG_DIRTY_SYNC_FIXED.major && qemu.minor >= TCG_DIRTY_SYNC_FIXED.minor);
  if (fixed) return { live: true, pausedBecause: null };
  return {
    live: false,
    pausedBecause:
      `QEMU ${qemu.major}.${qemu.minor}.${qemu.micro} under TCG can lose pages the guest writes ` +
      "during a live save (fixed in QEMU 9.0); the guest was paused for the save instead " +
      "(use QEMU ≥ 9.0, e.g. SNAPWAKE_QEMU=10.0, for live saves)",
  };
}
