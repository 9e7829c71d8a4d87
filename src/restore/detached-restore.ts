/**
 * A lazy or partial restore that returns once the guest runs, its pages then filled by a
 * detached page server (detached.ts) that outlives the caller. The caller's half (ADR 0015):
 * the server is spawned first; while it starts, this process holds the checkpoint, starts
 * the target QEMU (launch.ts) and hands it over, then waits for the server's report. A
 * server that did not report "running" leaves nothing behind: the QEMU started here is
 * stopped and its state removed. The server's half is detached-server.ts.
 *
 * Only the spawn comes before QEMU's start: this module imports nothing of the restore code
 * (launch.ts is loaded after the spawn), so a caller loads it at little cost.
 */
import { fileURLToPath } from "node:url";
import type { QemuInstall } from "../vm/qemu-install.ts";
import type { WorkingSetSource } from "../wss/working-set.ts";
import { type DetachedRestore, spawnPageServer } from "./detached.ts";
import type { RestoreMode } from "./modes.ts";

export interface DetachedRestoreOptions {
  readonly home: string;
  readonly checkpoint: string;
  /** The new managed VM's name (default: the saved VM's); also names the server's log. */
  readonly vmName?: string;
  readonly qemu?: QemuInstall;
  /** lazy, partial or auto (default: DEFAULT_RESTORE_MODE): eager and mapped have no server. */
  readonly mode?: Exclude<RestoreMode, "eager" | "mapped">;
  /** As RestoreOptions.workingSetKind. */
  readonly workingSetKind?: WorkingSetSource;
  /** As RestoreOptions.resetAccessedBits. */
  readonly resetAccessedBits?: boolean;
  /**
   * Cancels the restore until the server reported: the server stops its QEMU, nothing is
   * registered, and restoreDetached rejects with the signal's reason.
   */
  readonly signal?: AbortSignal;
  /**
   * The page server's program and arguments; it must serve as serveDetached does. Default:
   * this library's server (detached-server.ts) with the options above. A caller that brings
   * its own (the CLI runs itself as `__serve-restore` with its arguments) carries mode,
   * workingSetKind and resetAccessedBits to it itself: they are not read here then.
   */
  readonly server?: readonly [string, ...string[]];
}

/**
 * Restores the checkpoint with a detached page server; resolves once the guest runs (or
 * rejects, with the server's error as the class it had, and nothing left behind). The
 * server logs next to the checkpoint's restore records (DetachedRestore.log).
 */
export async function restoreDetached(opts: DetachedRestoreOptions): Promise<DetachedRestore> {
  const where = {
    home: opts.home,
    checkpoint: opts.checkpoint,
    ...(opts.vmName === undefined ? {} : { vmName: opts.vmName }),
  };
  const handoff = Promise.withResolvers<string>();
  // The spawn goes first (spawnPageServer spawns before it returns); QEMU starts meanwhile.
  const server = spawnPageServer({
    ...where,
    command: opts.server ?? libraryServer(opts),
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    handoff: handoff.promise,
  });
  const launch = import("./launch.ts").then((m) =>
    m.launchForPageServer({ ...where, ...(opts.qemu === undefined ? {} : { qemu: opts.qemu }) }),
  );
  launch.then((held) => handoff.resolve(held.line), handoff.reject);
  let line: DetachedRestore;
  try {
    line = await server;
  } catch (error) {
    await launch.then(
      (held) => held.settle(false),
      () => undefined,
    );
    throw error;
  }
  await (await launch).settle(true);
  return line;
}

/** This library's page server (detached-server.ts, run as a script) with the options as JSON. */
function libraryServer(opts: DetachedRestoreOptions): [string, ...string[]] {
  const { signal: _signal, server: _server, ...serverOptions } = opts;
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js"; // run from src/ or from dist/
  const script = fileURLToPath(new URL(`./detached-server${ext}`, import.meta.url));
  return [process.execPath, script, JSON.stringify(serverOptions)];
}
