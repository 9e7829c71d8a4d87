/**
 * Boots snapwake's own test guest as a managed VM and waits until its workloads run.
 * Shared by the integration tests, the demo and the bench.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  type AgentClient,
  type GuestParams,
  guestArtifacts,
  kernelAppend,
  waitUntilResponsive,
} from "../../guest/index.ts";
import {
  type ManagedVm,
  parseVmSpec,
  type QemuInstall,
  startVm,
  type VmSpec,
} from "../../src/vm/index.ts";
import { defaultQemu } from "./qemu.ts";

/** TCG boot is ~5 s, plus filling memory; generous for a loaded 2-core machine. */
const BOOT_BUDGET_MS = 180_000;
const POLL_INTERVAL_MS = 250;

export interface TestGuestOptions {
  readonly name: string;
  /** Guest RAM; must exceed params.memMiB by ~100 MiB (kernel, page cache). */
  readonly memoryMiB: number;
  readonly params?: Partial<GuestParams>;
  /**
   * The data disk as a writable qcow2 image at this path (made from the built raw image by
   * `qemuDataDisk`), so a save freezes it; default: the built raw image, read-only. The guest
   * mounts it read-only either way, and reads its files into the page cache at boot.
   */
  readonly qcow2DataDisk?: string;
  /** virtio-balloon free page reporting (the spec's `freePageReporting`). */
  readonly freePageReporting?: boolean;
  /** The QEMU that runs it; default: defaultQemu() (SNAPWAKE_QEMU, else 10.0). */
  readonly qemu?: QemuInstall;
  /** vCPUs (the spec's `smp`); default 1. */
  readonly smp?: number;
}

/** Converts the built raw data disk into a fresh qcow2 image at `path` (qemu-img convert). */
export function makeQcow2DataDisk(path: string): void {
  const raw = guestArtifacts().dataDisk;
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, path]);
}

/** The VM spec of the test guest: Debian kernel, busybox initramfs, its data disk. */
export function testGuestSpec(opts: TestGuestOptions): VmSpec {
  const a = guestArtifacts();
  const disk =
    opts.qcow2DataDisk === undefined
      ? { path: a.dataDisk, format: "raw", readonly: true }
      : { path: opts.qcow2DataDisk, format: "qcow2", readonly: false };
  return parseVmSpec(
    {
      name: opts.name,
      machine: "pc",
      accel: "tcg",
      memoryMiB: opts.memoryMiB,
      ...(opts.smp === undefined ? {} : { smp: opts.smp }),
      kernel: a.kernel,
      initrd: a.initrd,
      append: kernelAppend(opts.params),
      disks: [disk],
      agent: true,
      ...(opts.freePageReporting === true ? { freePageReporting: true } : {}),
      qemu: opts.qemu ?? defaultQemu(),
    },
    { baseDir: a.dir },
  );
}

/** Starts the guest and returns once its agent answers and both workloads are running. */
export async function bootTestGuest(
  home: string,
  opts: TestGuestOptions,
): Promise<{ vm: ManagedVm; agent: AgentClient }> {
  const vm = await startVm(home, testGuestSpec(opts));
  const agent = await connectAgent(vm);
  await waitForRunning(agent);
  return { vm, agent };
}

/** Connects to a (possibly still booting, or just restored) VM's agent. */
export async function connectAgent(vm: { agentSocket: string | null }): Promise<AgentClient> {
  assert(vm.agentSocket !== null, "the test guest has an agent socket");
  return waitUntilResponsive(vm.agentSocket, BOOT_BUDGET_MS);
}

/** Polls stats until the memory workload has filled its pages and the files were read. */
export async function waitForRunning(agent: AgentClient): Promise<void> {
  const end = performance.now() + BOOT_BUDGET_MS;
  while (performance.now() < end) {
    const stats = await agent.stats();
    if (stats.phase === "running") return;
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
  throw new Error(`the test guest's workloads did not start within ${BOOT_BUDGET_MS} ms`);
}

/** Returns once the guest's hot writer counted past `than` (agent round trips, no timer). */
export async function waitForMoreRewrites(agent: AgentClient, than: number): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    const stats = await agent.stats();
    if (stats.rewrites > than) return;
    await agent.ping();
  }
  assert.fail("the guest's hot writer did not advance after the restore");
}
