/**
 * Real QEMU, real guest: free memory is not stored. The guest frees 256 MiB it filled with
 * incompressible bytes; with free page reporting (virtio-balloon) it hands those pages back,
 * QEMU discards them, and the save stores them as zero pages. Eager and lazy restores verify
 * every page and file, and the restored guest goes on reporting and verifying clean.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CheckpointReader, CheckpointStore } from "../../src/checkpoint/index.ts";
import { restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { killVm, listVms, stopVm } from "../../src/vm/index.ts";
import { reportedAfter, reportsSettled } from "../support/qemu-rss.ts";
import { bootTestGuest, connectAgent } from "../support/test-guest.ts";

const GUEST = { memoryMiB: 512, params: { memMiB: 32, hotPct: 5, hotRate: 200 } } as const;
const SCRATCH_MIB = 256;
const MIB = 2 ** 20;

let home = "";
before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-fpr-"));
});
after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
});

/** Guest memory the checkpoint holds as non-zero pages (stored or on disk), in MiB. */
async function nonZeroMiB(name: string): Promise<number> {
  const reader = await CheckpointReader.open(new CheckpointStore({ home }), name);
  const s = reader.manifest.statistics;
  await reader.close();
  return ((s.pagesTotal - s.pagesZero) * 4096) / MIB;
}

test("free page reporting: memory the guest freed is not stored; restores verify clean", async () => {
  const { vm, agent } = await bootTestGuest(home, {
    name: "fpr",
    ...GUEST,
    freePageReporting: true,
  });
  await save({ home, vm, name: "fpr@0", parent: null });
  const filled = await reportedAfter(vm.pid, (SCRATCH_MIB * MIB * 3) / 4, () =>
    agent.scratch(SCRATCH_MIB),
  );
  assert.equal(filled, SCRATCH_MIB);
  // The drop above is most of the report, not all of it: the save must see the rest too.
  await reportsSettled(vm.pid);
  agent.close();
  await save({ home, vm, name: "fpr@1", parent: null, after: "stop" });
  await killVm(home, vm).catch(() => undefined);

  const [before, freed] = [await nonZeroMiB("fpr@0"), await nonZeroMiB("fpr@1")];
  assert.ok(
    freed < before + SCRATCH_MIB / 8,
    `non-zero pages ${before.toFixed(0)} MiB before, ${freed.toFixed(0)} MiB after the guest ` +
      `filled and freed ${SCRATCH_MIB} MiB: the freed memory was not stored`,
  );

  for (const mode of ["eager", "lazy"] as const) {
    const r = await restore({ home, checkpoint: "fpr@1", vmName: `fpr-${mode}`, mode });
    const back = await connectAgent(r.vm);
    try {
      if ("fill" in r) await r.fill;
      assert.equal((await back.verify({ timeoutMs: 120_000 })).bad, 0, `${mode}: pages`);
      assert.equal((await back.files({ timeoutMs: 120_000 })).bad, 0, `${mode}: files`);
      await reportedAfter(
        r.vm.pid,
        (SCRATCH_MIB * MIB) / 4,
        () => back.scratch(SCRATCH_MIB / 2),
        `the ${mode} restore of fpr@1`,
      );
      assert.equal((await back.verify({ timeoutMs: 120_000 })).bad, 0, `${mode}: after reports`);
    } finally {
      back.close();
      await stopVm(home, r.vm.name);
    }
  }
});
