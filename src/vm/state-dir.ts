/**
 * Where a managed VM keeps its files: `<home>/vms/<name>/`. One place names them all, so the
 * launcher, the registry and the command line cannot disagree.
 */
import { join } from "node:path";
import * as layout from "../store/layout.ts";

export interface VmStatePaths {
  stateDir: string;
  /** The normalized VmSpec the VM was started from. */
  specFile: string;
  /** The exact argv QEMU was started with, binary first. */
  cmdlineFile: string;
  /** Written by QEMU (-pidfile). */
  pidFile: string;
  qmpSocket: string;
  /** Serial port 2 (ttyS1 in the guest), when the spec has an agent. */
  agentSocket: string;
  /** Serial port 1 (ttyS0): the guest console. */
  consoleLog: string;
  /** QEMU's own stdout and stderr. */
  qemuLog: string;
  /** The pid of the snapwake process starting the VM; exists only until QMP is up. */
  startingFile: string;
}

export function vmsDir(home: string): string {
  return layout.vmsDir(home);
}

export function vmStatePaths(stateDir: string): VmStatePaths {
  return {
    stateDir,
    specFile: join(stateDir, "spec.json"),
    cmdlineFile: join(stateDir, "cmdline.json"),
    pidFile: join(stateDir, "qemu.pid"),
    qmpSocket: join(stateDir, "qmp.sock"),
    agentSocket: join(stateDir, "agent.sock"),
    consoleLog: join(stateDir, "console.log"),
    qemuLog: join(stateDir, "qemu.log"),
    startingFile: join(stateDir, "starting.pid"),
  };
}

export function vmPaths(home: string, name: string): VmStatePaths {
  return vmStatePaths(layout.vmDir(home, name));
}
