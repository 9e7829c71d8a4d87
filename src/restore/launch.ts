/**
 * The caller's half of a detached lazy or partial restore (ADR 0015): while the page server
 * process starts, the caller holds the checkpoint for reading, starts the target QEMU and
 * hands it over (a RestoreHandoff line on the server's stdin), so QEMU's start overlaps the
 * server's. The server attaches to that QEMU (`launched` in PostcopyRestoreOptions).
 *
 * Invariants: the caller's shared hold on the checkpoint lasts until the server reported, so
 * the checkpoint the server opens is the one QEMU was started for; a restore whose server did
 * not report "running" leaves no QEMU, VM state or overlay behind (`settle(false)`).
 */
// Not the checkpoint barrel: its store brings the reader and writer, ~12 ms of loading before
// QEMU's spawn (docs/bench.md, "The floors under a restore").
import { manifestOf } from "../checkpoint/read/checkpoint-files.ts";
import { StoreLock } from "../store/lock.ts";
import type { QemuInstall } from "../vm/index.ts";
import { launchRestoreTarget } from "./target.ts";

export interface HandoffOptions {
  readonly home: string;
  readonly checkpoint: string;
  readonly vmName?: string;
  readonly qemu?: QemuInstall;
}

/** A started target QEMU waiting for the page server to attach. */
export interface HeldTarget {
  /** The RestoreHandoff as the server reads it (parseHandoff). */
  readonly line: string;
  /**
   * Ends the caller's part: with `running` false (the server failed or was stopped) stops
   * QEMU and removes what the launch made; then lets the checkpoint go.
   */
  settle(running: boolean): Promise<void>;
}

/** Holds the checkpoint and starts its target QEMU for a page server to attach to. */
export async function launchForPageServer(opts: HandoffOptions): Promise<HeldTarget> {
  const lock = await StoreLock.acquire(opts.home, {
    command: "restore",
    mode: "shared",
    uses: [{ checkpoint: opts.checkpoint, access: "read" }],
  });
  try {
    const manifest = await manifestOf(opts.home, opts.checkpoint);
    const target = { name: opts.checkpoint, manifest };
    const launched = await launchRestoreTarget(opts.home, target, opts.vmName, opts.qemu);
    return {
      line: JSON.stringify(launched.handoff),
      async settle(running) {
        try {
          await (running ? launched.release() : launched.abandon());
        } finally {
          await lock.release();
        }
      },
    };
  } catch (error) {
    await lock.release();
    throw error;
  }
}
