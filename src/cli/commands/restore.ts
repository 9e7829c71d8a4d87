/**
 * `snapwake restore`. A lazy or partial restore without --wait runs in a detached page server
 * (src/restore/detached.ts): this command spawns it as `__serve-restore` with its own
 * arguments, prints the server's report and exits. Eager restores and --wait run in this
 * process (serve-restore.ts).
 *
 * The spawn is the first thing the command does (this module and detached.ts import nothing of
 * the restore code); then, while the server starts, this process holds the checkpoint, starts
 * the target QEMU and hands it to the server (src/restore/launch.ts, ADR 0015), so QEMU's start
 * and the server's overlap. A server that did not report "running" leaves nothing behind: this
 * process stops the QEMU it started and removes its state.
 */
import { type DetachedRestore, spawnPageServer } from "../../restore/detached.ts";
import type { Run } from "./index.ts";

export const runRestore: Run = async (ctx, p) => {
  if (p.str("mode") === "eager" || p.flag("wait")) {
    const { runRestoreHere } = await import("./serve-restore.ts");
    return runRestoreHere(ctx, p);
  }
  const script = process.argv[1];
  if (script === undefined) throw new Error("Cannot find the snapwake script to spawn");
  const vmName = p.str("name");
  const qemu = ctx.qemu();
  const opts = {
    home: ctx.home,
    checkpoint: p.arg(0),
    ...(vmName === undefined ? {} : { vmName }),
  };
  // The server is spawned first; this process then starts QEMU while the server starts, and
  // hands it over (ADR 0015).
  const handoff = Promise.withResolvers<string>();
  const server = spawnPageServer({
    ...opts,
    command: [process.execPath, ...process.execArgv, script, "__serve-restore", ...p.raw],
    signal: ctx.signal,
    handoff: handoff.promise,
  });
  const launch = import("../../restore/launch.ts").then((m) =>
    m.launchForPageServer({ ...opts, ...(qemu === undefined ? {} : { qemu }) }),
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
  ctx.result(line, `${humanLine(p.arg(0), line)}\n  the page server (pid ${line.server}) fills it`);
};

/** The summary line of a restore whose guest runs. */
export function humanLine(
  checkpoint: string,
  l: Pick<DetachedRestore, "vm" | "mode" | "wallMs" | "pagesPrefetched">,
): string {
  const prefetched = l.pagesPrefetched > 0 ? `, ${l.pagesPrefetched} pages prefetched` : "";
  const seconds = (l.wallMs / 1000).toFixed(2);
  return `restored "${checkpoint}" as VM "${l.vm}" (${l.mode}): running in ${seconds} s${prefetched}`;
}
