/**
 * The page server's half of a detached restore (detached-restore.ts, ADR 0015): it reads the
 * QEMU its caller started (the handoff on stdin), restores into it, reports "running" or why
 * not on its report line (detached.ts), and serves the pages until the fill is done.
 *
 * serveDetached is that half for any server program: the CLI's hidden `__serve-restore`
 * calls it. Run as a script, this module is the library's own server: restoreDetached
 * spawns it with its options as one JSON argument; SIGINT or SIGTERM before the guest runs
 * stop the QEMU, and the fill's report (or its error) goes to the log.
 */
import { InterruptedError, UsageError } from "../errors.ts";
import { readHandoff, reportFailed, reportRunning } from "./detached.ts";
import { DEFAULT_RESTORE_MODE } from "./modes.ts";
import type { PostcopyRestoreResult } from "./postcopy/index.ts";
import { type RestoreOptions, restore } from "./restore.ts";
import { parseHandoff } from "./target.ts";

/** What the server restores with: the restore's options but the QEMU, which is handed over. */
export type ServeOptions = Omit<RestoreOptions, "launched">;

/**
 * In the server: restores into the caller's QEMU and reports; resolves once the guest runs,
 * its `fill` settling when every page is in. A failure is reported to the caller and thrown.
 */
export async function serveDetached(opts: ServeOptions): Promise<PostcopyRestoreResult> {
  let running: PostcopyRestoreResult;
  try {
    const mode = opts.mode ?? DEFAULT_RESTORE_MODE;
    if (mode === "eager" || mode === "mapped")
      throw new UsageError("A detached page server serves lazy, partial and auto restores only");
    const launched = readHandoff().then(parseHandoff);
    launched.catch(() => undefined); // unread when the restore fails before it attaches
    running = await restore({ ...opts, mode, launched });
  } catch (error) {
    reportFailed(error);
    throw error;
  }
  reportRunning({
    vm: running.vm.name,
    mode: running.mode,
    wallMs: running.wallMs,
    pagesPrefetched: running.pagesPrefetched,
    server: process.pid,
  });
  return running;
}

/** The library's server: argv[2] is its ServeOptions as JSON (detached-restore.ts). */
async function main(json: string | undefined): Promise<number> {
  const interrupt = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () =>
      interrupt.abort(new InterruptedError(`Interrupted by ${signal}`, signal)),
    );
  }
  try {
    let opts: ServeOptions;
    try {
      opts = JSON.parse(json ?? "") as ServeOptions;
    } catch (cause) {
      reportFailed(new Error("The page server got no options (a JSON argument)", { cause }));
      throw cause;
    }
    const running = await serveDetached({ ...opts, signal: interrupt.signal });
    const { trace, ...fill } = await running.fill;
    process.stderr.write(`${JSON.stringify({ ...fill, traceRequests: trace.length })}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    return 1;
  }
}

if (import.meta.main) {
  main(process.argv[2]).then((code) => {
    process.exitCode = code;
  });
}
