/**
 * `snapwake restore`. A lazy or partial restore without --wait runs in a detached page server
 * (src/restore/detached-restore.ts): this command has it spawn this CLI as `__serve-restore`
 * with its own arguments, prints the server's report and exits. Eager and mapped restores and
 * --wait run in this process (serve-restore.ts).
 *
 * The spawn is the first thing the command does (this module and detached-restore.ts import
 * nothing of the restore code); the library then starts the target QEMU while the server
 * starts and hands it over (ADR 0015).
 */
import type { DetachedRestore } from "../../restore/detached.ts";
import { restoreDetached } from "../../restore/detached-restore.ts";
import type { Run } from "./index.ts";

export const runRestore: Run = async (ctx, p) => {
  const mode = p.str("mode");
  if (mode === "eager" || mode === "mapped" || p.flag("wait")) {
    const { runRestoreHere } = await import("./serve-restore.ts");
    return runRestoreHere(ctx, p);
  }
  const script = process.argv[1];
  if (script === undefined) throw new Error("Cannot find the snapwake script to spawn");
  const vmName = p.str("name");
  const qemu = ctx.qemu();
  const line = await restoreDetached({
    home: ctx.home,
    checkpoint: p.arg(0),
    ...(vmName === undefined ? {} : { vmName }),
    ...(qemu === undefined ? {} : { qemu }),
    signal: ctx.signal,
    // The server parses the same arguments: mode, --working-set and the rest are its to read.
    server: [process.execPath, ...process.execArgv, script, "__serve-restore", ...p.raw],
  });
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
