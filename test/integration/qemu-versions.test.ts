/**
 * Real QEMU 7.2 and 10.0 (docs/qemu-versions.md): the key save/restore paths on 7.2 (the
 * other tests run on 10.0, the reference), a 7.2 checkpoint restored on 10.0 on its own
 * machine type, and a 10.0 checkpoint refused by 7.2 before any QEMU starts. The guest
 * verifies every page it owns after each restore. Where the host has no 7.2 (Debian 13) and
 * SNAPWAKE_QEMU_7_2 names none, the tests that need it are skipped, saying so.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CheckpointReader, CheckpointStore } from "../../src/checkpoint/index.ts";
import { UsageError } from "../../src/errors.ts";
import { restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { killVm, listVms, stopVm } from "../../src/vm/index.ts";
import { qemu10, qemu72 } from "../support/qemu.ts";
import { bootTestGuest, connectAgent } from "../support/test-guest.ts";

const GUEST = { memoryMiB: 256, params: { memMiB: 96, hotPct: 5, hotRate: 1000 } } as const;
const QEMU_10 = qemu10();
const { qemu: QEMU_72, skip: NO_72 } = qemu72();
const LIMIT = { timeout: 600_000 } as const;
/** For the tests that need QEMU 7.2: skipped, with the reason, where there is none. */
const WITH_72 = { ...LIMIT, skip: NO_72 } as const;

/** QEMU 7.2, in a test that is skipped without it. */
function q72() {
  assert.ok(QEMU_72 !== null, "the test is skipped without QEMU 7.2");
  return QEMU_72;
}

let home = "";
before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-ver-"));
});
after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
});

async function runtimeOf(checkpoint: string) {
  const reader = await CheckpointReader.open(new CheckpointStore({ home }), checkpoint);
  try {
    return { runtime: reader.manifest.runtime, format: reader.manifest.format };
  } finally {
    await reader.close();
  }
}

async function verifyRestored(vm: { name: string; agentSocket: string | null }): Promise<void> {
  const agent = await connectAgent(vm);
  try {
    const verify = await agent.verify({ timeoutMs: 120_000 });
    assert.equal(verify.bad, 0, "no page differs after the restore");
    assert.ok(verify.pages > 0);
  } finally {
    agent.close();
    await stopVm(home, vm.name);
  }
}

test(
  "QEMU 7.2: a live save pauses the guest (TCG), records 7.2, restores eager and lazy clean",
  WITH_72,
  async () => {
    const { vm, agent } = await bootTestGuest(home, { name: "v72", ...GUEST, qemu: q72() });
    agent.close();
    const saved = await save({ home, vm, name: "v72@1" });
    assert.equal(saved.live, false, "a 7.2 TCG save is never live");
    assert.match(saved.pausedBecause ?? "", /QEMU 7\.2\.\d+ under TCG/);
    assert.equal((await vm.qmp.execute("query-status", {})).running, true, "it runs again");
    await killVm(home, vm);
    const { runtime, format } = await runtimeOf("v72@1");
    assert.equal(format, "1.3");
    assert.match(runtime?.qemuVersion ?? "", /^7\.2\.\d+$/);
    assert.equal(runtime?.machineType, "pc-i440fx-7.2");

    const eager = await restore({
      home,
      checkpoint: "v72@1",
      vmName: "v72-eager",
      qemu: q72(),
      mode: "eager",
    });
    await verifyRestored(eager.vm);
    const lazy = await restore({
      home,
      checkpoint: "v72@1",
      mode: "lazy",
      vmName: "v72-lazy",
      qemu: q72(),
    });
    await lazy.fill;
    await verifyRestored(lazy.vm);
  },
);

test("a 7.2 checkpoint restores on 10.0 on machine type pc-i440fx-7.2", WITH_72, async () => {
  const restored = await restore({
    home,
    checkpoint: "v72@1",
    vmName: "v72-on-10",
    qemu: QEMU_10,
    mode: "eager",
  });
  const vms = await listVms(home);
  assert.ok(vms.some((v) => v.name === "v72-on-10"));
  await verifyRestored(restored.vm);
});

test("QEMU 10.0: a live save stays live and records 10.0", LIMIT, async () => {
  const { vm, agent } = await bootTestGuest(home, { name: "v10", ...GUEST, qemu: QEMU_10 });
  agent.close();
  const saved = await save({ home, vm, name: "v10@1" });
  assert.equal(saved.live, true);
  assert.equal(saved.pausedBecause, null);
  await killVm(home, vm);
  const { runtime } = await runtimeOf("v10@1");
  assert.match(runtime?.qemuVersion ?? "", /^10\.0\.\d+$/);
  assert.equal(runtime?.machineType, "pc-i440fx-10.0");
});

test("7.2 refuses a 10.0 checkpoint before starting anything", WITH_72, async () => {
  await assert.rejects(
    restore({ home, checkpoint: "v10@1", vmName: "v10-on-72", qemu: q72(), mode: "eager" }),
    (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, /no machine type "pc-i440fx-10\.0".*QEMU 10\.0\.\d+/);
      return true;
    },
  );
  assert.ok(!(await listVms(home)).some((v) => v.name === "v10-on-72"), "no VM was started");
  const layers = await readdir(join(home, "layers")).catch(() => []);
  assert.deepEqual(layers, [], "no overlay was made");
});

test("the 10.0 checkpoint restores on 10.0", LIMIT, async () => {
  const restored = await restore({
    home,
    checkpoint: "v10@1",
    vmName: "v10-back",
    qemu: QEMU_10,
    mode: "eager",
  });
  await verifyRestored(restored.vm);
});
