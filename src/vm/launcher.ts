/**
 * Starts managed VMs: QEMU runs detached (it outlives the snapwake process that started it),
 * with its files in `<home>/vms/<name>/`.
 * Invariants: a name has at most one live QEMU; startVm either returns a VM whose QMP is up
 * or leaves no state directory and no QEMU behind.
 */
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { resolve } from "node:path";
import { QemuError, UsageError } from "../errors.ts";
import { QMP_CONNECT_TIMEOUT_MS, VM_STOP_TIMEOUT_MS } from "../limits.ts";
import { describeQemuLog, QmpClient } from "../qemu/qmp/index.ts";
import { errorCode, processAlive } from "../util/index.ts";
import {
  buildQemuArgs,
  type QemuRuntime,
  qemuFor,
  type RamFile,
  resolveQemuBinary,
  type SharedRam,
} from "./command-line.ts";
import { readPidFile, signalProcess, stuckError, waitForQemuExit } from "./process.ts";
import { type QemuInstall, qemuCommand } from "./qemu-install.ts";
import { readVmRecord, removeStateDir } from "./registry.ts";
import { VM_NAME_PATTERN, type VmSpec } from "./spec.ts";
import { type VmStatePaths, vmPaths, vmsDir } from "./state-dir.ts";

/** A running managed VM and an open QMP connection to it. */
export interface ManagedVm {
  name: string;
  stateDir: string;
  pid: number;
  spec: VmSpec;
  qmp: QmpClient;
  /** The guest agent's serial port socket; null when the spec has no agent. */
  agentSocket: string | null;
  consoleLog: string;
  /** QEMU's stdout and stderr. */
  qemuLog: string;
  /** The QEMU binary and its arguments, as recorded in cmdline.json. */
  qemuBinary: string;
  args: string[];
  /**
   * Settles when QEMU exits: with its exit code when this process spawned it (null if a
   * signal killed it), with null for a QEMU found by openVm (noticed by polling its pid;
   * after close() that polling stops and this never settles). Never rejects.
   */
  exited: Promise<number | null>;
  /** Closes the QMP connection and stops watching the pid; the VM keeps running. */
  close(): void;
}

/** The file descriptor QEMU gets `StartVmOptions.incomingSocket` on: the first after stdio. */
export const QEMU_INCOMING_FD = 3;
/** The descriptor a mapped restore's RAM image has in QEMU (StartVmOptions.ramFile). */
export const QEMU_RAM_FILE_FD = 4;

export interface StartVmOptions {
  /** Start waiting for an incoming migration (`migrate-incoming` through QMP). */
  incoming?: "defer";
  /** Start with the vCPUs stopped (-S). */
  paused?: boolean;
  /** The QEMU to run, overriding spec.qemu (its binary and -L data dirs). */
  qemu?: QemuInstall;
  /** Only the binary, overriding `qemu` and spec.qemu (kept for tests with a fake QEMU). */
  qemuBinary?: string;
  /** Deadline for QEMU to bring up QMP. */
  timeoutMs?: number;
  /** Called once QEMU is exec'd, before its QMP is up: the caller may work while it starts. */
  onSpawn?: () => void;
  /**
   * A connected socket QEMU gets as its file descriptor QEMU_INCOMING_FD (`migrate-incoming
   * fd:3`, an eager restore's stream, ADR 0030). The caller closes its own copy once QEMU was
   * spawned.
   */
  incomingSocket?: Socket;
  /**
   * The guest's RAM mapped from an open file (a mapped restore, ADR 0032): QEMU gets `fd` as
   * its QEMU_RAM_FILE_FD and maps that inode, not whatever a path names by then.
   */
  ramFile?: Omit<RamFile, "path"> & { readonly fd: number };
  /** The guest's RAM in a memfd QEMU makes (an eager restore, ADR 0034). */
  sharedRam?: SharedRam;
}

/**
 * Starts QEMU for `spec` as managed VM `spec.name` and connects QMP. Throws UsageError when a
 * live VM has that name, QemuError (quoting QEMU's log) when QEMU fails to come up.
 */
export async function startVm(
  home: string,
  spec: VmSpec,
  options: StartVmOptions = {},
): Promise<ManagedVm> {
  const launched = await launchVm(home, spec, options);
  options.onSpawn?.();
  try {
    return await launched.connect(options.timeoutMs);
  } catch (error) {
    await launched.abandon();
    throw error;
  }
}

/**
 * A QEMU spawned for a managed VM, its QMP not yet connected: `connect` in this process, or
 * hand `pid` to another process that attaches to it (control.ts, attachStartingVm) while this
 * one stays alive (it is QEMU's parent and reaps it).
 */
export interface LaunchedVm {
  readonly spec: VmSpec;
  readonly paths: VmStatePaths;
  readonly pid: number;
  /** Settles with QEMU's exit code (null if killed by a signal or never run). Never rejects. */
  readonly exited: Promise<number | null>;
  /** Waits for QMP, fails early with QEMU's own complaint; removes the "starting" mark. */
  connect(timeoutMs?: number): Promise<ManagedVm>;
  /** SIGKILLs QEMU if it still runs and removes the state directory: the name is free again. */
  abandon(): Promise<void>;
}

/**
 * The first half of startVm: claims the state directory, records the spec and command line,
 * and spawns QEMU detached. Throws UsageError when a live VM has that name; on any failure
 * leaves no state directory and no QEMU behind.
 */
export async function launchVm(
  home: string,
  spec: VmSpec,
  options: Omit<StartVmOptions, "onSpawn" | "timeoutMs"> = {},
): Promise<LaunchedVm> {
  if (!VM_NAME_PATTERN.test(spec.name)) {
    throw new UsageError(
      `spec.name: expected a string matching ${VM_NAME_PATTERN}, got "${spec.name}"`,
    );
  }
  const paths = vmPaths(resolve(home), spec.name);
  const runtime: QemuRuntime = {
    stateDir: paths.stateDir,
    ...(options.incoming === undefined ? {} : { incoming: options.incoming }),
    ...(options.paused === undefined ? {} : { paused: options.paused }),
    ...(options.qemu === undefined ? {} : { qemu: options.qemu }),
    ...(options.sharedRam === undefined ? {} : { sharedRam: options.sharedRam }),
    ...(options.ramFile === undefined
      ? {}
      : {
          ramFile: {
            id: options.ramFile.id,
            sizeBytes: options.ramFile.sizeBytes,
            path: `/proc/self/fd/${QEMU_RAM_FILE_FD}`,
          },
        }),
  };
  const args = buildQemuArgs(spec, runtime);
  const install = qemuFor(spec, runtime);
  const binary = resolveQemuBinary({ qemuBinary: options.qemuBinary ?? install.binary });
  await claimStateDir(home, spec.name, paths);
  let spawned: Spawned | undefined;
  try {
    await writeFile(paths.startingFile, `${process.pid}\n`);
    await writeFile(paths.specFile, `${JSON.stringify(spec, null, 2)}\n`);
    await writeFile(paths.cmdlineFile, `${JSON.stringify([binary, ...args], null, 2)}\n`);
    const command = qemuCommand(install, binary, args);
    spawned = await spawnDetached(...command, paths.qemuLog, {
      incoming: options.incomingSocket,
      ramFd: options.ramFile?.fd,
    });
  } catch (error) {
    if (spawned !== undefined) await killChild(spawned);
    await removeStateDir(paths);
    throw error;
  }
  const child = spawned;
  const pid = child.child.pid;
  if (pid === undefined) {
    await removeStateDir(paths);
    throw cannotRun(await child.spawnFailed);
  }
  child.child.unref();
  return {
    spec,
    paths,
    pid,
    exited: child.exited,
    async connect(timeoutMs) {
      const qmp = await connectStarting(paths, child, timeoutMs);
      await rm(paths.startingFile);
      return managedVm(spec, paths, { pid, qmp, exited: child.exited, qemuBinary: binary, args });
    },
    async abandon() {
      await killChild(child);
      await removeStateDir(paths);
    },
  };
}

/** Makes the state directory, refusing a live VM of that name and clearing a stale one. */
async function claimStateDir(home: string, name: string, paths: VmStatePaths): Promise<void> {
  const existing = await readVmRecord(home, name);
  if (existing?.alive === true) {
    throw new UsageError(
      `A VM named "${name}" is already running (pid ${existing.pid}); ` +
        `stop it with \`snapwake vm stop ${name}\` or choose another name`,
    );
  }
  if (existing !== undefined) {
    const starter = await readPidFile(paths.startingFile);
    if (starter !== undefined && processAlive(starter)) {
      throw new UsageError(
        `VM "${name}" is being started by process ${starter}; wait for it or choose another name`,
      );
    }
    await removeStateDir(paths); // stale: its QEMU is gone
  }
  await mkdir(vmsDir(resolve(home)), { recursive: true });
  try {
    await mkdir(paths.stateDir);
  } catch (error) {
    if (errorCode(error) !== "EEXIST") throw error;
    throw new UsageError(
      `Another process is starting a VM named "${name}" right now; choose another name`,
    );
  }
}

interface Spawned {
  child: ChildProcess;
  /** The exit code (null when killed by a signal or never started). Never rejects. */
  exited: Promise<number | null>;
  /** Settles with the error if the binary could not be run. Never rejects. */
  spawnFailed: Promise<Error>;
}

async function spawnDetached(
  binary: string,
  args: string[],
  logPath: string,
  fds: { readonly incoming: Socket | undefined; readonly ramFd: number | undefined },
): Promise<Spawned> {
  const log = await open(logPath, "w");
  try {
    // Detached with no pipes: QEMU outlives us and never blocks on a full stdout pipe.
    // stdio[i] is the child's fd i: QEMU_INCOMING_FD, then QEMU_RAM_FILE_FD.
    const stdio: StdioOptions = ["ignore", log.fd, log.fd];
    if (fds.incoming !== undefined || fds.ramFd !== undefined) stdio.push(fds.incoming ?? "ignore");
    if (fds.ramFd !== undefined) stdio.push(fds.ramFd);
    const child = spawn(binary, args, { detached: true, stdio });
    // Listen before the next await: spawn reports a missing binary on the next tick.
    const spawnFailed = new Promise<Error>((resolve) => child.once("error", resolve));
    const exited = new Promise<number | null>((resolve) => {
      child.once("exit", (code) => resolve(code));
      void spawnFailed.then(() => resolve(null));
    });
    return { child, exited, spawnFailed };
  } finally {
    await log.close();
  }
}

/** Waits for QMP; gives up early with QEMU's own complaint when QEMU exits first. */
async function connectStarting(
  paths: VmStatePaths,
  spawned: Spawned,
  timeoutMs = QMP_CONNECT_TIMEOUT_MS,
): Promise<QmpClient> {
  const controller = new AbortController();
  void spawned.spawnFailed.then((error) => controller.abort(cannotRun(error)));
  void spawned.exited.then(async (code) => {
    const log = await describeQemuLog(paths.qemuLog);
    if (controller.signal.aborted) return;
    controller.abort(new QemuError(`QEMU exited (code ${code}) before QMP came up. ${log}`));
  });
  return QmpClient.connect(paths.qmpSocket, {
    timeoutMs,
    logPath: paths.qemuLog,
    signal: controller.signal,
  });
}

function cannotRun(error: Error): QemuError {
  const hint = "install qemu-system-x86 (`npm run setup`) or pass qemuBinary";
  return new QemuError(`Cannot run QEMU (${error.message}); ${hint}`, { cause: error });
}

async function killChild({ child, exited }: Spawned): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.ref(); // launchVm unref'd it: its exit must keep this process alive to be seen
  child.kill("SIGKILL");
  await exited;
}

/** Assembles the ManagedVm handle. `exited` settles with the exit code or null. */
export function managedVm(
  spec: VmSpec,
  paths: VmStatePaths,
  run: {
    pid: number;
    qmp: QmpClient;
    exited: Promise<number | null>;
    qemuBinary: string;
    args: string[];
    stopWatching?: () => void;
  },
): ManagedVm {
  return {
    name: spec.name,
    stateDir: paths.stateDir,
    pid: run.pid,
    spec,
    qmp: run.qmp,
    agentSocket: spec.agent ? paths.agentSocket : null,
    consoleLog: paths.consoleLog,
    qemuLog: paths.qemuLog,
    qemuBinary: run.qemuBinary,
    args: run.args,
    exited: run.exited,
    close() {
      run.stopWatching?.();
      run.qmp.close();
    },
  };
}

/** Waits for a QEMU asked to quit; SIGKILLs it when it does not exit in time. */
export async function ensureExited(
  name: string,
  pid: number,
  paths: VmStatePaths,
  exited: Promise<unknown>,
  timeoutMs = VM_STOP_TIMEOUT_MS,
): Promise<void> {
  if (await waitForQemuExit(pid, paths.pidFile, exited, timeoutMs)) return;
  signalProcess(pid, "SIGKILL");
  if (await waitForQemuExit(pid, paths.pidFile, exited, VM_STOP_TIMEOUT_MS)) return;
  throw stuckError(name, pid, VM_STOP_TIMEOUT_MS);
}
