/**
 * Turns a VmSpec into QEMU's argv. Deterministic: the same spec gives the same argv except
 * for state-dir paths, so a checkpoint's recorded command line recreates the same machine
 * (same devices, same order, same RAM blocks) at restore.
 */
import { isAbsolute } from "node:path";
import { UsageError } from "../errors.ts";
import { RAM_DIR_ALIGN_BYTES, UNIX_SOCKET_PATH_BYTES_MAX } from "../limits.ts";
import { dataDirArgs, QEMU_BINARY_DEFAULT, type QemuInstall } from "./qemu-install.ts";
import type { DiskSpec, VmSpec } from "./spec.ts";
import { vmStatePaths } from "./state-dir.ts";

export { QEMU_BINARY_DEFAULT };

export interface QemuRuntime {
  /** Absolute directory for the VM's sockets, logs and pid file. */
  stateDir: string;
  /** Start waiting for an incoming migration, configured later through QMP. */
  incoming?: "defer";
  /** Start with the vCPUs stopped (-S); QMP `cont` starts them. */
  paused?: boolean;
  /** The QEMU that runs it, overriding spec.qemu (e.g. a restore onto another version). */
  qemu?: QemuInstall;
  /** The guest's RAM mapped copy-on-write from a file (a mapped restore, ADR 0032). */
  ramFile?: RamFile;
  /** The guest's RAM shared with this process, filled by an eager restore (ADR 0034, 0035). */
  sharedRam?: SharedRam;
}

/**
 * Guest RAM backed by a file QEMU maps private (share=off): reads come from the file, writes
 * stay in QEMU's memory. `id` names the RAM block (the machine's own, e.g. pc.ram), so a
 * migration stream's block finds it.
 */
export interface RamFile {
  readonly id: string;
  readonly path: string;
  readonly sizeBytes: number;
}

/**
 * Guest RAM QEMU maps shared (share=on), which a restore opens through /proc and writes before
 * QEMU loads its stream (restore/guest-ram.ts): a memfd QEMU creates (memory-backend-memfd), or
 * with `dir` a file QEMU creates in that directory and unlinks at once (memory-backend-file,
 * mem-path=dir), for a tmpfs mounted with huge pages (ADR 0035; mapped at a 2 MiB boundary, so
 * that each huge page is one entry). `id` names the RAM block, as in RamFile.
 */
export interface SharedRam {
  readonly id: string;
  readonly sizeBytes: number;
  readonly dir?: string;
}

/** The name QEMU gives a memory-backend-memfd's memfd: /proc shows `/memfd:<it> (deleted)`. */
export const QEMU_MEMFD_NAME = "memory-backend-memfd";
/** How QEMU names the file it creates in a memory-backend-file's mem-path directory. */
export const QEMU_RAM_FILE_PREFIX = "qemu_back_mem.";

/** The QEMU for a VM: the runtime's choice, else the spec's, else the system one on PATH. */
export function qemuFor(spec: VmSpec, runtime: { qemu?: QemuInstall }): QemuInstall {
  return runtime.qemu ?? spec.qemu ?? { binary: QEMU_BINARY_DEFAULT, dataDirs: [] };
}

/** The QEMU binary to run: the caller's choice, or QEMU_BINARY_DEFAULT (looked up on PATH). */
export function resolveQemuBinary(options: { qemuBinary?: string } = {}): string {
  const binary = options.qemuBinary ?? QEMU_BINARY_DEFAULT;
  if (binary === "") throw new UsageError('qemuBinary: expected a program name or path, got ""');
  return binary;
}

/**
 * Escapes a value inside a QEMU option string ("key=value,key=value"): a comma is doubled.
 * Used where QEMU parses the value as options (-drive, unix: chardevs), not for plain
 * arguments (-kernel, -pidfile) or the file: chardev, which take the rest verbatim.
 */
function optionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

function checkSocketPath(path: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes <= UNIX_SOCKET_PATH_BYTES_MAX) return;
  throw new UsageError(
    `Socket path ${path} is ${bytes} bytes; Unix sockets allow at most ` +
      `${UNIX_SOCKET_PATH_BYTES_MAX}. Use a shorter snapwake home (SNAPWAKE_HOME) or VM name`,
  );
}

function driveArgs(disk: DiskSpec): string[] {
  const readonly = disk.readonly ? "on" : "off";
  const options = `file=${optionValue(disk.path)},if=${disk.interface},format=${disk.format}`;
  return ["-drive", `${options},readonly=${readonly}`];
}

function ramFileArgs(f: RamFile): string[] {
  const backend = `id=${optionValue(f.id)},size=${f.sizeBytes},mem-path=${optionValue(f.path)}`;
  return [
    "-object",
    `memory-backend-file,${backend},share=off`,
    "-machine",
    `memory-backend=${optionValue(f.id)}`,
  ];
}

function sharedRamArgs(m: SharedRam): string[] {
  const backend = `id=${optionValue(m.id)},size=${m.sizeBytes},share=on`;
  const file = (dir: string) => `mem-path=${optionValue(dir)},align=${RAM_DIR_ALIGN_BYTES}`;
  return [
    "-object",
    m.dir === undefined
      ? `memory-backend-memfd,${backend}`
      : `memory-backend-file,${backend},${file(m.dir)}`,
    "-machine",
    `memory-backend=${optionValue(m.id)}`,
  ];
}

/** QEMU's argv (without the binary) for `spec`, with its state files under `runtime.stateDir`. */
export function buildQemuArgs(spec: VmSpec, runtime: QemuRuntime): string[] {
  if (!isAbsolute(runtime.stateDir)) {
    throw new UsageError(`stateDir: expected an absolute path, got "${runtime.stateDir}"`);
  }
  const paths = vmStatePaths(runtime.stateDir);
  if (spec.agent) checkSocketPath(paths.agentSocket); // the longer of the two
  checkSocketPath(paths.qmpSocket);
  const args = ["-name", spec.name, ...dataDirArgs(qemuFor(spec, runtime))];
  args.push("-machine", `${spec.machine},accel=${spec.accel}`);
  args.push("-m", `${spec.memoryMiB}M`, "-smp", String(spec.smp));
  if (runtime.ramFile !== undefined) args.push(...ramFileArgs(runtime.ramFile));
  if (runtime.sharedRam !== undefined) args.push(...sharedRamArgs(runtime.sharedRam));
  if (spec.cpu !== undefined) args.push("-cpu", spec.cpu);
  args.push("-nodefaults", "-no-user-config", "-display", "none");
  if (spec.kernel !== undefined) args.push("-kernel", spec.kernel);
  if (spec.initrd !== undefined) args.push("-initrd", spec.initrd);
  if (spec.append !== undefined) args.push("-append", spec.append);
  args.push("-serial", `file:${paths.consoleLog}`);
  if (spec.agent) {
    args.push("-serial", `unix:${optionValue(paths.agentSocket)},server=on,wait=off`);
  }
  for (const disk of spec.disks) args.push(...driveArgs(disk));
  if (spec.freePageReporting === true)
    args.push("-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on");
  args.push("-qmp", `unix:${optionValue(paths.qmpSocket)},server=on,wait=off`);
  args.push("-pidfile", paths.pidFile);
  if (runtime.incoming !== undefined) args.push("-incoming", runtime.incoming);
  if (runtime.paused === true) args.push("-S");
  args.push(...spec.extraArgs);
  return args;
}
