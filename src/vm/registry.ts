/**
 * The managed VMs on this host: one state directory each under `<home>/vms/`. The directory
 * is the registry entry; a VM is live when the pid in its `qemu.pid` is a QEMU started with
 * that pid file. A directory whose QEMU is gone is stale and is removed when found in the way.
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { resolve } from "node:path";
import { QemuError, UsageError } from "../errors.ts";
import { VM_STATUS_TIMEOUT_MS } from "../limits.ts";
import { QmpClient, type RunState } from "../qemu/qmp/index.ts";
import { errorCode } from "../util/index.ts";
import { isQemuAlive, readPidFile } from "./process.ts";
import { parseVmSpec, VM_NAME_PATTERN, type VmSpec } from "./spec.ts";
import { type VmStatePaths, vmPaths, vmsDir } from "./state-dir.ts";

export interface VmListing {
  name: string;
  stateDir: string;
  /** QEMU's pid, or null when it never wrote its pid file. */
  pid: number | null;
  alive: boolean;
  /**
   * QEMU's run state (query-status). Absent when the VM is dead, or when its one QMP
   * connection is held by another client (another snapwake process) and did not answer.
   */
  status?: RunState;
  /** From spec.json; null when that file is missing or unreadable (a half-started VM). */
  memoryMiB: number | null;
}

/** What the state directory says about one VM. */
export interface VmRecord {
  paths: VmStatePaths;
  pid: number | undefined;
  alive: boolean;
}

/** Reads the VM's state directory, or returns undefined when there is none. */
export async function readVmRecord(home: string, name: string): Promise<VmRecord | undefined> {
  const paths = vmPaths(resolve(home), name);
  try {
    await readdir(paths.stateDir);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
  const pid = await readPidFile(paths.pidFile);
  const alive = pid !== undefined && (await isQemuAlive(pid, paths.pidFile));
  return { paths, pid, alive };
}

/** The spec the VM was started from (spec.json), or undefined when it cannot be read. */
export async function readRecordedSpec(paths: VmStatePaths): Promise<VmSpec | undefined> {
  let text: string;
  try {
    text = await readFile(paths.specFile, "utf8");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
  try {
    return parseVmSpec(JSON.parse(text), { baseDir: paths.stateDir });
  } catch (error) {
    // Half-written (QEMU start interrupted) or edited by hand: the listing shows it as unknown.
    if (error instanceof SyntaxError || error instanceof UsageError) return undefined;
    throw error;
  }
}

/** Removes a VM's state directory (its QEMU must be gone). */
export async function removeStateDir(paths: VmStatePaths): Promise<void> {
  await rm(paths.stateDir, { recursive: true, force: true });
}

/** Every managed VM under `home`, by name, with its liveness and (when reachable) status. */
export async function listVms(home: string): Promise<VmListing[]> {
  let names: string[];
  try {
    names = (await readdir(vmsDir(resolve(home)), { withFileTypes: true }))
      .filter((entry) => entry.isDirectory() && VM_NAME_PATTERN.test(entry.name))
      .map((entry) => entry.name)
      .sort();
  } catch (error) {
    if (errorCode(error) === "ENOENT") return [];
    throw error;
  }
  const listings: VmListing[] = [];
  for (const name of names) {
    const record = await readVmRecord(home, name);
    if (record === undefined) continue; // removed while we listed
    const spec = await readRecordedSpec(record.paths);
    const listing: VmListing = {
      name,
      stateDir: record.paths.stateDir,
      pid: record.pid ?? null,
      alive: record.alive,
      memoryMiB: spec?.memoryMiB ?? null,
    };
    const status = record.alive ? await queryStatus(record.paths) : undefined;
    listings.push(status === undefined ? listing : { ...listing, status });
  }
  return listings;
}

/** query-status over a short-lived connection; undefined when QMP is busy or unreachable. */
async function queryStatus(paths: VmStatePaths): Promise<RunState | undefined> {
  let qmp: QmpClient;
  try {
    qmp = await QmpClient.connect(paths.qmpSocket, { timeoutMs: VM_STATUS_TIMEOUT_MS });
  } catch (error) {
    if (error instanceof QemuError) return undefined; // busy (one client at a time) or dying
    throw error;
  }
  try {
    return (await qmp.execute("query-status", {}, { timeoutMs: VM_STATUS_TIMEOUT_MS })).status;
  } catch (error) {
    if (error instanceof QemuError) return undefined;
    throw error;
  } finally {
    qmp.close();
  }
}
