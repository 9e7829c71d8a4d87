/**
 * The fill: after the package, serve pages until all are placed, end the stream, and wait for
 * QEMU to confirm (SHUT(0) on the return path, query-migrate `completed`). On any failure the
 * guest is stopped at once, QEMU killed and its state removed; the error says why (a corrupt
 * chunk names the chunk; a closed channel says how far the fill got).
 */
import { InvalidCheckpointError, QemuError } from "../../errors.ts";
import { RESTORE_COMPLETE_TIMEOUT_MS, RESTORE_STOP_TIMEOUT_MS } from "../../limits.ts";
import { describeQemuLog } from "../../qemu/qmp/index.ts";
import { asError } from "../../util/index.ts";
import { killVm, listVms, type ManagedVm } from "../../vm/index.ts";
import type { AccessedBitsReset } from "../../wss/index.ts";
import type { MigrationChannel } from "./channel.ts";
import type { ChunkCache } from "./chunk-cache.ts";
import type { DemandWindow } from "./demand-window.ts";
import type { FillOrder } from "./fill-order.ts";
import type { PageServer } from "./page-server.ts";
import type { Placement } from "./placement.ts";
import type { PreludeCounts } from "./prelude.ts";
import { writeRestoreRecord } from "./record.ts";
import { buildFillReport, type FillReport, type PostcopyMode } from "./report.ts";
import { readReturnPath } from "./return-path-loop.ts";

/** Everything one lazy or partial restore holds while it serves. */
export interface Session {
  readonly home: string;
  readonly checkpoint: string;
  readonly mode: PostcopyMode;
  readonly vm: ManagedVm;
  readonly channel: MigrationChannel;
  readonly server: PageServer;
  readonly placement: Placement;
  readonly order: FillOrder;
  readonly cache: ChunkCache;
  /** The demand-only window of a profiling restore, or null. */
  readonly window: DemandWindow | null;
  /** The accessed-bit reset the channel's writer applies to every page it sends. */
  readonly reset: AccessedBitsReset;
  readonly startedMs: number;
  readonly startedAt: Date;
  readonly record: boolean;
  /** Releases what the session read from (the checkpoint reader). */
  close(): Promise<void>;
}

/** Starts reading the return path; returns the SHUT status (null: the channel ended first). */
export function watchSession(s: Session): Promise<number | null> {
  const shut = readReturnPath(s.channel, s.server);
  shut.catch((error: unknown) => s.server.fail(asError(error)));
  s.channel.closed.then((cause) => s.server.fail(channelClosed(s, cause)));
  s.vm.exited.then((code) =>
    s.server.fail(new QemuError(`The restoring QEMU exited (${code ?? "killed by a signal"})`)),
  );
  return shut;
}

/** Serves until done; settles the restore's `fill`. Cleans up either way. */
export async function serveFill(
  s: Session,
  prelude: PreludeCounts,
  shut: Promise<number | null>,
  runMs: number,
): Promise<FillReport> {
  let report: FillReport;
  try {
    await s.server.run();
    s.window?.close("filled"); // every page was requested before the trace settled
    const timeToFullFillMs = performance.now() - s.startedMs;
    const status = await withTimeout(shut, RESTORE_COMPLETE_TIMEOUT_MS, "SHUT");
    if (status !== 0) {
      throw new QemuError(
        status === null
          ? "the restoring QEMU closed the migration channel after EOF without SHUT"
          : `the restoring QEMU answered SHUT(${status}): it failed to load the stream`,
      );
    }
    await s.vm.qmp.waitForMigration({ timeoutMs: RESTORE_COMPLETE_TIMEOUT_MS });
    report = buildFillReport({
      mode: s.mode,
      prelude,
      server: s.server.stats,
      latency: s.server.latency.summary(),
      trace: s.server.trace.records,
      traceDropped: s.server.trace.dropped,
      cache: s.cache.stats,
      placement: s.placement,
      order: s.order,
      runMs,
      timeToFullFillMs,
      timeToCompletedMs: performance.now() - s.startedMs,
      traceWindow: s.window?.report ?? null,
      accessedBits: s.reset.report(),
    });
  } catch (error) {
    s.window?.close("failed");
    const reported = await explain(s, error);
    await abandon(s);
    if (s.record) await record(s, null, reported).catch(() => undefined); // the error wins
    throw reported;
  } finally {
    await s.close();
  }
  s.channel.socket.destroy(); // QEMU closed its end after SHUT
  s.vm.close(); // the guest runs on; only our QMP connection ends
  return s.record ? { ...report, recordPath: await record(s, report, null) } : report;
}

/** Stops the guest at once, then kills QEMU and removes its state; never throws. */
export async function abandon(s: Pick<Session, "home" | "vm" | "channel">): Promise<void> {
  if (!s.vm.qmp.isClosed()) {
    // A vCPU blocked on a missing page never stops: bounded, and QEMU is killed next anyway.
    await s.vm.qmp
      .execute("stop", {}, { timeoutMs: RESTORE_STOP_TIMEOUT_MS })
      .catch((error: unknown) => {
        if (!(error instanceof QemuError)) throw error;
      });
  }
  // Kill before closing the channel: a QEMU that sees the stream end first exits by itself
  // and removes its pid file, and killVm(handle) then leaves the state directory behind.
  await killVm(s.home, s.vm);
  s.channel.socket.destroy();
  const left = (await listVms(s.home)).find((v) => v.name === s.vm.name);
  if (left !== undefined && !left.alive && left.pid === null) await killVm(s.home, s.vm.name);
}

/**
 * The error to report: a corrupt chunk as it is; a write or read failure on a closed channel
 * as the channel closing (with how far the fill got); and QEMU's log when QEMU has exited.
 */
async function explain(s: Session, error: unknown): Promise<Error> {
  if (error instanceof InvalidCheckpointError) return error;
  let base = asError(error);
  if (s.channel.isClosed() && !(base instanceof QemuError)) base = channelClosed(s, base);
  if (!(await exitedQuickly(s.vm))) return base;
  const log = await describeQemuLog(s.vm.qemuLog);
  return new QemuError(`${base.message}; ${log}`, { cause: base });
}

async function exitedQuickly(vm: ManagedVm): Promise<boolean> {
  const gone = Symbol("gone");
  const r = await Promise.race([
    vm.exited.then(() => gone),
    new Promise((resolve) => setTimeout(resolve, 200)),
  ]);
  return r === gone;
}

function channelClosed(s: Session, cause: Error | undefined): Error {
  const placed = s.order.fillPages - s.server.remaining;
  const why = cause === undefined ? "" : ` (${cause.message})`;
  return new QemuError(
    `The migration channel to the restoring QEMU closed before the fill completed, at ` +
      `${placed} of ${s.order.fillPages} non-zero pages placed${why}`,
    cause === undefined ? undefined : { cause },
  );
}

async function record(s: Session, report: FillReport | null, error: Error | null): Promise<string> {
  return writeRestoreRecord(s.home, {
    formatVersion: 1,
    checkpoint: s.checkpoint,
    vm: s.vm.name,
    mode: s.mode,
    startedAt: s.startedAt.toISOString(),
    endedAt: new Date().toISOString(),
    outcome: report === null ? "failed" : "filled",
    report,
    error: error === null ? null : { name: error.name, message: error.message },
  });
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new QemuError(`the restoring QEMU sent no ${what} within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
