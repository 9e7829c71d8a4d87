/**
 * Reaches and ends managed VMs that are already running: openVm connects to one (possibly
 * started by another snapwake process), stopVm asks it to quit, killVm does not ask.
 * Both remove the state directory once QEMU is gone, so the name is free again.
 */
import { readFile, rm } from "node:fs/promises";
import { resolve } from "node:path";
import { NotFoundError, QemuError } from "../errors.ts";
import { QMP_CONNECT_TIMEOUT_MS, VM_STATUS_TIMEOUT_MS, VM_STOP_TIMEOUT_MS } from "../limits.ts";
import { describeQemuLog, QmpClient } from "../qemu/qmp/index.ts";
import { ensureExited, type ManagedVm, managedVm } from "./launcher.ts";
import { signalProcess, watchQemuExit } from "./process.ts";
import { readRecordedSpec, readVmRecord, removeStateDir, type VmRecord } from "./registry.ts";
import { type VmStatePaths, vmPaths } from "./state-dir.ts";

function notFound(name: string): NotFoundError {
  return new NotFoundError(`No managed VM named "${name}"; \`snapwake vm ls\` lists them`);
}

async function liveRecord(home: string, name: string): Promise<VmRecord & { pid: number }> {
  const record = await readVmRecord(home, name);
  if (record === undefined) throw notFound(name);
  if (!record.alive || record.pid === undefined) {
    throw new NotFoundError(
      `VM "${name}" is not running: its QEMU has exited (see ${record.paths.qemuLog}); ` +
        `\`snapwake vm stop ${name}\` removes what it left`,
    );
  }
  return { ...record, pid: record.pid };
}

async function readCmdline(paths: VmStatePaths): Promise<[string, string[]]> {
  const json: unknown = JSON.parse(await readFile(paths.cmdlineFile, "utf8"));
  if (!Array.isArray(json) || !json.every((a): a is string => typeof a === "string")) {
    throw new QemuError(`${paths.cmdlineFile} is not a JSON array of strings; was it edited?`);
  }
  const [binary, ...args] = json;
  if (binary === undefined) throw new QemuError(`${paths.cmdlineFile} is empty; was it edited?`);
  return [binary, args];
}

/** Connects to the running managed VM `name`. NotFoundError when there is none. */
export async function openVm(
  home: string,
  name: string,
  options: { timeoutMs?: number } = {},
): Promise<ManagedVm> {
  const { paths, pid } = await liveRecord(home, name);
  return connectRecorded(paths, pid, { ...options, starting: false });
}

/**
 * Connects to a VM whose QEMU another process launched (launchVm) and handed over as `pid`:
 * waits for its QMP, failing early with QEMU's own complaint when that pid is gone, and
 * removes the "starting" mark. The launcher stays QEMU's parent until this returns.
 */
export async function attachStartingVm(
  home: string,
  name: string,
  pid: number,
  options: { timeoutMs?: number } = {},
): Promise<ManagedVm> {
  const paths = vmPaths(resolve(home), name);
  const vm = await connectRecorded(paths, pid, { ...options, starting: true });
  await rm(paths.startingFile, { force: true });
  return vm;
}

/**
 * The ManagedVm of the QEMU `pid` whose spec and command line are recorded in `paths`, with
 * its QMP connected. `starting`: QEMU may still be coming up, so its exit ends the wait at
 * once with its own complaint instead of at the timeout.
 */
async function connectRecorded(
  paths: VmStatePaths,
  pid: number,
  options: { timeoutMs?: number; starting: boolean },
): Promise<ManagedVm> {
  const spec = await readRecordedSpec(paths);
  if (spec === undefined)
    throw new QemuError(`${paths.specFile} is missing or invalid; was it edited?`);
  const [qemuBinary, args] = await readCmdline(paths);
  const watching = new AbortController();
  const exited = watchQemuExit(pid, paths.pidFile, watching.signal);
  const gone = new AbortController();
  if (options.starting) {
    void exited.then(async () => {
      const log = await describeQemuLog(paths.qemuLog);
      gone.abort(new QemuError(`QEMU (pid ${pid}) exited before QMP came up. ${log}`));
    });
  }
  let qmp: QmpClient;
  try {
    qmp = await QmpClient.connect(paths.qmpSocket, {
      timeoutMs: options.timeoutMs ?? QMP_CONNECT_TIMEOUT_MS,
      logPath: paths.qemuLog,
      signal: gone.signal,
    });
  } catch (error) {
    watching.abort();
    throw error;
  }
  const stopWatching = () => watching.abort();
  return managedVm(spec, paths, { pid, qmp, exited, qemuBinary, args, stopWatching });
}

/**
 * Stops a managed VM: QMP `quit` (SIGTERM when another client holds its QMP), then SIGKILL if
 * it has not exited within `timeoutMs`; removes its state directory. Pass the ManagedVm when
 * this process holds its QMP connection (QEMU serves one QMP client at a time).
 */
export async function stopVm(
  home: string,
  target: string | ManagedVm,
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? VM_STOP_TIMEOUT_MS;
  await endVm(home, target, { missingIsError: true, timeoutMs }, async (pid, paths, ours) => {
    const qmp = ours?.qmp ?? (await connectIfFree(paths));
    if (qmp === undefined) signalProcess(pid, "SIGTERM");
    else await quit(qmp, timeoutMs);
    if (ours === undefined) qmp?.close();
  });
}

/** SIGKILLs a managed VM's QEMU and removes its state directory. No VM of that name is fine. */
export async function killVm(home: string, target: string | ManagedVm): Promise<void> {
  const options = { missingIsError: false, timeoutMs: VM_STOP_TIMEOUT_MS };
  await endVm(home, target, options, async (pid) => signalProcess(pid, "SIGKILL"));
}

/**
 * Ends the VM with `end`, makes sure its QEMU is gone (SIGKILL after `timeoutMs`), removes its
 * state directory and closes the handle. A handle whose QEMU has already been replaced by
 * another VM of the same name only gets closed: the other VM is not touched.
 */
async function endVm(
  home: string,
  target: string | ManagedVm,
  options: { missingIsError: boolean; timeoutMs: number },
  end: (pid: number, paths: VmStatePaths, ours: ManagedVm | undefined) => Promise<void>,
): Promise<void> {
  const handle = typeof target === "string" ? undefined : target;
  const name = handle?.name ?? String(target);
  try {
    const record = await readVmRecord(home, name);
    if (record === undefined) {
      if (handle === undefined && options.missingIsError) throw notFound(name);
      return;
    }
    const { paths, pid } = record;
    // Another VM of that name replaced ours: leave it alone. A QEMU that already exited and
    // removed its pid file (pid undefined) is ours, dead: fall through to remove its state.
    if (handle !== undefined && pid !== undefined && handle.pid !== pid) return;
    if (record.alive && pid !== undefined) {
      await end(pid, paths, handle);
      const exited = handle?.exited ?? new Promise<never>(() => {});
      await ensureExited(name, pid, paths, exited, options.timeoutMs);
      // Gone for sure: let the handle's own watcher see it before close(). Bounded by a timer,
      // because a detached, unref'd child's exit event alone does not keep Node's loop alive.
      if (handle !== undefined) await raceTimeout(handle.exited, EXIT_EVENT_WAIT_MS);
    }
    await removeStateDir(paths);
  } finally {
    handle?.close();
  }
}

/** After the pid is gone, the exit event follows within milliseconds. */
const EXIT_EVENT_WAIT_MS = 2_000;

async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function connectIfFree(paths: VmStatePaths): Promise<QmpClient | undefined> {
  try {
    return await QmpClient.connect(paths.qmpSocket, { timeoutMs: VM_STATUS_TIMEOUT_MS });
  } catch (error) {
    if (error instanceof QemuError) return undefined; // another client holds QMP: use a signal
    throw error;
  }
}

async function quit(qmp: QmpClient, timeoutMs: number): Promise<void> {
  try {
    await qmp.execute("quit", {}, { timeoutMs });
  } catch (error) {
    // QEMU may close the connection before its reply arrives; whether it exited is checked next.
    if (!(error instanceof QemuError)) throw error;
  }
}
