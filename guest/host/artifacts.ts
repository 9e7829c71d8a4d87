/**
 * The built test guest: where scripts/build-guest.ts puts it, what guest.json says, and how
 * to boot it (kernel command line, QEMU arguments). The guest's contract, which the rest of
 * snapwake relies on: ttyS0 is the console, ttyS1 is the agent (see agent-client.ts), the
 * first virtio drive is the read-only data disk.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NotFoundError, UsageError } from "../../src/errors.ts";
import type { DataDiskParams } from "../builder/data-files.ts";
import { GUEST_HOT_RATE_MAX, GUEST_MEM_MIB_MAX, GUEST_SWEEP_MS_MAX } from "./limits.ts";

/** build/guest/ of this checkout. */
export const GUEST_BUILD_DIR: string = fileURLToPath(
  new URL("../../build/guest/", import.meta.url),
);

export interface GuestArtifacts {
  dir: string;
  /** vmlinux: the uncompressed ELF kernel, booted via its PVH entry (~3 s faster under TCG). */
  kernel: string;
  /** vmlinuz: the distribution's bzImage, unchanged; also boots, just slower. */
  vmlinuz: string;
  initrd: string;
  dataDisk: string;
  /** guest.json, see GuestInfo. */
  info: string;
  /** Hash of the build's inputs; the build is skipped while it matches. */
  stamp: string;
}

/** Paths of the build outputs in dir (build/guest/ by default). */
export function guestArtifacts(dir: string = GUEST_BUILD_DIR): GuestArtifacts {
  return {
    dir,
    kernel: path.join(dir, "vmlinux"),
    vmlinuz: path.join(dir, "vmlinuz"),
    initrd: path.join(dir, "initrd.img"),
    dataDisk: path.join(dir, "data.img"),
    info: path.join(dir, "guest.json"),
    stamp: path.join(dir, "stamp"),
  };
}

/** What the data disk holds by default: 64 MiB in 16 files. */
export const DATA_DISK_DEFAULT: Readonly<DataDiskParams> = {
  totalBytes: 64 * 1024 * 1024,
  fileCount: 16,
  seed: 0x5eed,
};

/** guest.json, written last by the build. */
export interface GuestInfo {
  formatVersion: 1;
  kernelVersion: string;
  /** Boot this one (ELF vmlinux, PVH entry). */
  kernel: string;
  vmlinuz: string;
  initrd: string;
  dataDisk: string;
  dataDiskBytes: number;
  dataFiles: number;
  /** Sum of the data files' sizes (MANIFEST excluded). */
  dataBytes: number;
  /** Kernel modules in the initramfs, load order, relative to /lib/modules/<ver>. */
  modules: string[];
  inputsHash: string;
}

/** Reads and checks guest.json; NotFoundError (with the fix) if the guest is not built. */
export async function loadGuestInfo(dir: string = GUEST_BUILD_DIR): Promise<GuestInfo> {
  const file = guestArtifacts(dir).info;
  const fix = "build it with `node scripts/build-guest.ts` (npm test does this)";
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new NotFoundError(`Cannot read the test guest's ${file}: ${fix}`, { cause });
  }
  const info: unknown = JSON.parse(text);
  if (!isGuestInfo(info))
    throw new NotFoundError(`Cannot use ${file}: it is not a format 1 guest.json; re${fix}`);
  return info;
}

function isGuestInfo(x: unknown): x is GuestInfo {
  if (typeof x !== "object" || x === null) return false;
  const o = x as Record<string, unknown>;
  const strings = ["kernelVersion", "kernel", "vmlinuz", "initrd", "dataDisk", "inputsHash"];
  const numbers = ["dataDiskBytes", "dataFiles", "dataBytes"];
  return (
    o.formatVersion === 1 &&
    strings.every((k) => typeof o[k] === "string") &&
    numbers.every((k) => Number.isSafeInteger(o[k])) &&
    Array.isArray(o.modules) &&
    o.modules.every((m) => typeof m === "string")
  );
}

/** Workload parameters, passed on the kernel command line as snapwake.* (see docs/guest.md). */
export interface GuestParams {
  /** Anonymous memory the guest fills and verifies, MiB. Boot with RAM >= memMiB + ~100 MiB. */
  memMiB: number;
  /** Percent of those pages a writer thread keeps rewriting. */
  hotPct: number;
  /** Most hot pages rewritten per second (bounds the dirty rate so precopy converges). */
  hotRate: number;
  /** Seed of the memory pattern. */
  seed: number;
  /**
   * Every this many ms the guest reads every filled page, as a scan or a GC would, so its
   * working set is all of its memory; 0 (the default) turns the sweeper off.
   */
  sweepMs: number;
}

export const GUEST_PARAMS_DEFAULT: Readonly<GuestParams> = {
  memMiB: 64,
  hotPct: 5,
  hotRate: 2000,
  seed: 1,
  sweepMs: 0,
};

function checkParam(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new UsageError(
      `Cannot boot the test guest with ${name}=${value}: use an integer from ${min} to ${max}`,
    );
  return value;
}

/** Kernel command line ("-append") for the guest: console on ttyS0 plus snapwake.* params. */
export function kernelAppend(params: Partial<GuestParams> = {}): string {
  const p = { ...GUEST_PARAMS_DEFAULT, ...params };
  return [
    "console=ttyS0",
    `snapwake.mem_mib=${checkParam("memMiB", p.memMiB, 1, GUEST_MEM_MIB_MAX)}`,
    `snapwake.hot_pct=${checkParam("hotPct", p.hotPct, 0, 100)}`,
    `snapwake.hot_rate=${checkParam("hotRate", p.hotRate, 0, GUEST_HOT_RATE_MAX)}`,
    `snapwake.seed=${checkParam("seed", p.seed, 0, Number.MAX_SAFE_INTEGER)}`,
    `snapwake.sweep_ms=${checkParam("sweepMs", p.sweepMs, 0, GUEST_SWEEP_MS_MAX)}`,
  ].join(" ");
}

export interface GuestQemuOptions {
  /** Unix socket QEMU creates for ttyS1 (the agent); connect with AgentClient. */
  agentSocket: string;
  /** File QEMU writes the console (ttyS0) to. */
  consoleLog: string;
  params?: Partial<GuestParams>;
  artifacts?: GuestArtifacts;
}

/**
 * The guest-specific QEMU arguments (kernel, initrd, append, both serial ports, data disk).
 * The caller adds the machine: `-accel tcg -M pc -m 256 -smp 1 -nodefaults -display none`.
 */
export function guestQemuArgs(options: GuestQemuOptions): string[] {
  const a = options.artifacts ?? guestArtifacts();
  return [
    ["-kernel", a.kernel],
    ["-initrd", a.initrd],
    ["-append", kernelAppend(options.params)],
    ["-serial", `file:${noComma(options.consoleLog)}`],
    ["-serial", `unix:${noComma(options.agentSocket)},server=on,wait=off`],
    ["-drive", `file=${a.dataDisk.replaceAll(",", ",,")},if=virtio,format=raw,readonly=on`],
  ].flat();
}

/** QEMU's -serial syntax cannot escape commas (its -drive syntax doubles them). */
function noComma(file: string): string {
  if (file.includes(","))
    throw new UsageError(`Cannot pass "${file}" to QEMU -serial: choose a path without commas`);
  return file;
}
