/**
 * The VM spec: a JSON file a user writes to describe a machine. Validated by hand so each
 * problem names its field and says what is expected; all problems are reported at once.
 * A parsed spec is normalized: defaults filled in, paths absolute. Parsing it again
 * (e.g. from a checkpoint's manifest) gives the same spec.
 */
import assert from "node:assert/strict";
import { readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { NotFoundError, UsageError } from "../errors.ts";
import {
  QEMU_DATA_DIRS_MAX,
  VM_DISKS_MAX,
  VM_EXTRA_ARGS_MAX,
  VM_MEMORY_MIB_MAX,
  VM_MEMORY_MIB_MIN,
  VM_SMP_MAX,
  VM_SPEC_BYTES_MAX,
} from "../limits.ts";
import type { QemuInstall } from "./qemu-install.ts";

export type Accel = "tcg" | "kvm";
export type DiskFormat = "raw" | "qcow2";
export type DiskInterface = "virtio";

export interface DiskSpec {
  /** Absolute path of the image. */
  path: string;
  format: DiskFormat;
  readonly: boolean;
  interface: DiskInterface;
}

export interface VmSpec {
  name: string;
  machine: string;
  accel: Accel;
  /** CPU model (`-cpu`); absent means QEMU's default for the accelerator. */
  cpu?: string;
  smp: number;
  memoryMiB: number;
  /** Direct boot: absolute paths and the kernel command line. */
  kernel?: string;
  initrd?: string;
  append?: string;
  disks: DiskSpec[];
  /** An extra serial port (ttyS1 in the guest) wired to a Unix socket for the guest agent. */
  agent: boolean;
  /**
   * virtio-balloon free page reporting: the guest hands memory it has freed back to QEMU,
   * which discards it, so a save stores it as zero pages (docs/guest.md, "Free memory").
   * Needs the guest's virtio_balloon driver. Absent means off.
   */
  freePageReporting?: boolean;
  /**
   * The QEMU that runs this VM: its binary and `-L` data dirs (src/vm/qemu-install.ts).
   * Absent means the caller's choice, else the system qemu-system-x86_64.
   */
  qemu?: QemuInstall;
  /** Appended verbatim to QEMU's command line: the escape hatch. */
  extraArgs: string[];
}

export interface ParseVmSpecOptions {
  /** Directory that relative paths in the spec are relative to (the spec file's). */
  baseDir: string;
}

/** VM names become directory names and QEMU's -name: no slashes, commas or leading dots. */
export const VM_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A machine type, e.g. "pc", "q35", "pc-i440fx-7.2"; properties go in extraArgs. */
const MACHINE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A CPU model with optional features, e.g. "max", "qemu64,+ssse3". */
const CPU_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+=,-]{0,255}$/;
const FIELDS = [
  "name",
  "machine",
  "accel",
  "cpu",
  "smp",
  "memoryMiB",
  "kernel",
  "initrd",
  "append",
  "disks",
  "agent",
  "freePageReporting",
  "qemu",
  "extraArgs",
];
const DISK_FIELDS = ["path", "format", "readonly", "interface"];
const QEMU_FIELDS = ["binary", "dataDirs", "moduleDir"];

function show(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Collects "field: expected …, got …" problems; throws them together. */
class Problems {
  readonly list: string[] = [];
  expected(field: string, what: string, value: unknown): undefined {
    this.list.push(`${field}: expected ${what}, got ${show(value)}`);
    return undefined;
  }
  add(message: string): void {
    this.list.push(message);
  }
}

function str(p: Problems, field: string, value: unknown, pattern?: RegExp): string | undefined {
  if (typeof value === "string" && (pattern === undefined || pattern.test(value))) return value;
  const what = pattern === undefined ? "a string" : `a string matching ${pattern}`;
  return p.expected(field, what, value);
}

function int(p: Problems, field: string, value: unknown, min: number, max: number) {
  if (Number.isInteger(value) && typeof value === "number" && value >= min && value <= max) {
    return value;
  }
  return p.expected(field, `an integer ${min}..${max}`, value);
}

function bool(p: Problems, field: string, value: unknown): boolean | undefined {
  return typeof value === "boolean" ? value : p.expected(field, "true or false", value);
}

function oneOf<T extends string>(p: Problems, field: string, value: unknown, options: T[]) {
  const found = options.find((o) => o === value);
  return found ?? p.expected(field, options.map((o) => `"${o}"`).join(" or "), value);
}

function filePath(p: Problems, field: string, value: unknown, baseDir: string) {
  if (typeof value !== "string" || value === "" || value.includes("\0")) {
    return p.expected(field, "a file path", value);
  }
  return isAbsolute(value) ? value : resolve(baseDir, value);
}

function unknownFields(
  p: Problems,
  where: string,
  value: Record<string, unknown>,
  known: string[],
) {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      p.add(`${where}.${key}: unknown field; expected one of ${known.join(", ")}`);
    }
  }
}

function parseDisk(p: Problems, field: string, value: unknown, baseDir: string) {
  if (!isRecord(value)) return p.expected(field, "an object { path, format }", value);
  unknownFields(p, field, value, DISK_FIELDS);
  const path = filePath(p, `${field}.path`, value.path, baseDir);
  const format = oneOf(p, `${field}.format`, value.format, ["raw", "qcow2"] as DiskFormat[]);
  const readonly =
    value.readonly === undefined ? false : bool(p, `${field}.readonly`, value.readonly);
  const iface = value.interface ?? "virtio";
  const diskInterface = oneOf(p, `${field}.interface`, iface, ["virtio"] as DiskInterface[]);
  if (path === undefined || format === undefined || readonly === undefined) return undefined;
  if (diskInterface === undefined) return undefined;
  return { path, format, readonly, interface: diskInterface } satisfies DiskSpec;
}

function parseQemu(p: Problems, field: string, value: unknown, baseDir: string) {
  if (!isRecord(value)) return p.expected(field, 'an object { "binary", "dataDirs" }', value);
  unknownFields(p, field, value, QEMU_FIELDS);
  const binary = str(p, `${field}.binary`, value.binary, /^[^\0]+$/);
  const dataDirs = parseList(p, `${field}.dataDirs`, value.dataDirs, QEMU_DATA_DIRS_MAX, (f, v) =>
    filePath(p, f, v, baseDir),
  );
  const moduleDir =
    value.moduleDir === undefined
      ? undefined
      : filePath(p, `${field}.moduleDir`, value.moduleDir, baseDir);
  if (binary === undefined) return undefined;
  // A name without a slash is looked up on PATH; a path is made absolute.
  const resolved = binary.includes("/") ? filePath(p, `${field}.binary`, binary, baseDir) : binary;
  if (resolved === undefined) return undefined;
  return {
    binary: resolved,
    dataDirs,
    ...(moduleDir === undefined ? {} : { moduleDir }),
  } satisfies QemuInstall;
}

function parseList<T>(
  p: Problems,
  field: string,
  value: unknown,
  max: number,
  item: (field: string, value: unknown) => T | undefined,
): T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > max) {
    return p.expected(field, `an array of at most ${max} items`, value) ?? [];
  }
  return value.flatMap((v: unknown, i) => item(`${field}[${i}]`, v) ?? []);
}

/**
 * Validates a VM spec (parsed JSON) and returns it normalized. Throws UsageError listing
 * every problem, one per line, each naming its field ("spec.memoryMiB: expected …").
 */
export function parseVmSpec(json: unknown, options: ParseVmSpecOptions): VmSpec {
  const p = new Problems();
  if (!isRecord(json)) throw new UsageError(`spec: expected a JSON object, got ${show(json)}`);
  const baseDir = resolve(options.baseDir);
  unknownFields(p, "spec", json, FIELDS);
  const name = str(p, "spec.name", json.name, VM_NAME_PATTERN);
  const machine = str(p, "spec.machine", json.machine ?? "pc", MACHINE_PATTERN);
  const accel = oneOf(p, "spec.accel", json.accel ?? "tcg", ["tcg", "kvm"] as Accel[]);
  const cpu = json.cpu === undefined ? undefined : str(p, "spec.cpu", json.cpu, CPU_PATTERN);
  if (cpu !== undefined && accel === "tcg" && cpu.split(",")[0] === "host") {
    p.add(`spec.cpu: "host" needs accel "kvm"; under "tcg" use "max" or leave cpu out`);
  }
  const smp = int(p, "spec.smp", json.smp ?? 1, 1, VM_SMP_MAX);
  const memoryMiB = int(p, "spec.memoryMiB", json.memoryMiB, VM_MEMORY_MIB_MIN, VM_MEMORY_MIB_MAX);
  const kernel =
    json.kernel === undefined ? undefined : filePath(p, "spec.kernel", json.kernel, baseDir);
  const initrd =
    json.initrd === undefined ? undefined : filePath(p, "spec.initrd", json.initrd, baseDir);
  const append = json.append === undefined ? undefined : str(p, "spec.append", json.append);
  if (json.kernel === undefined && (json.initrd !== undefined || json.append !== undefined)) {
    p.add("spec.kernel: required when spec.initrd or spec.append is given (direct boot)");
  }
  const disks = parseList(p, "spec.disks", json.disks, VM_DISKS_MAX, (f, v) =>
    parseDisk(p, f, v, baseDir),
  );
  const agent = json.agent === undefined ? true : bool(p, "spec.agent", json.agent);
  const reporting =
    json.freePageReporting === undefined
      ? false
      : bool(p, "spec.freePageReporting", json.freePageReporting);
  const qemu = json.qemu === undefined ? undefined : parseQemu(p, "spec.qemu", json.qemu, baseDir);
  const extraArgs = parseList(p, "spec.extraArgs", json.extraArgs, VM_EXTRA_ARGS_MAX, (f, v) =>
    str(p, f, v),
  );
  if (p.list.length > 0) throw new UsageError(`Invalid VM spec:\n  ${p.list.join("\n  ")}`);
  assert(
    name !== undefined && machine !== undefined && accel !== undefined,
    "no problems: all set",
  );
  assert(
    smp !== undefined && memoryMiB !== undefined && agent !== undefined,
    "no problems: all set",
  );
  return {
    name,
    machine,
    accel,
    ...(cpu === undefined ? {} : { cpu }),
    smp,
    memoryMiB,
    ...(kernel === undefined ? {} : { kernel }),
    ...(initrd === undefined ? {} : { initrd }),
    ...(append === undefined ? {} : { append }),
    disks,
    agent,
    ...(reporting === true ? { freePageReporting: true } : {}),
    ...(qemu === undefined ? {} : { qemu }),
    extraArgs,
  };
}

/** Reads and validates the spec file at `path`; relative paths in it are relative to its folder. */
export async function loadVmSpec(path: string): Promise<VmSpec> {
  const absolute = resolve(path);
  const info = await stat(absolute).catch((error: unknown) => {
    throw new NotFoundError(`Cannot read VM spec ${absolute}: ${String(error)}; check the path`);
  });
  if (info.size > VM_SPEC_BYTES_MAX) {
    throw new UsageError(
      `VM spec ${absolute} is ${info.size} bytes; a spec is at most ${VM_SPEC_BYTES_MAX}`,
    );
  }
  const text = await readFile(absolute, "utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError(`VM spec ${absolute} is not valid JSON (${reason}); fix its syntax`);
  }
  try {
    return parseVmSpec(json, { baseDir: dirname(absolute) });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    throw new UsageError(`${absolute}: ${error.message}`, { cause: error });
  }
}
