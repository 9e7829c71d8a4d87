/**
 * Real QEMU, real guest: mapped restores (ADR 0032). The first builds the checkpoint's RAM
 * image, a second runs beside it on the same image, and both guests verify every page they own
 * and every file they cached while their writers rewrite pages (their writes stay their own:
 * the image is unchanged, so the next restore's check passes). One flipped byte in the image
 * is caught by that check: the image is built again and the guest still verifies. A restore
 * interrupted while it builds the image leaves nothing behind. `rm` takes the image with the
 * checkpoint.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { AgentClient } from "../../guest/index.ts";
import { CheckpointStore } from "../../src/checkpoint/index.ts";
import { manifestOf } from "../../src/checkpoint/read/checkpoint-files.ts";
import { InterruptedError } from "../../src/errors.ts";
import { restore } from "../../src/restore/index.ts";
import { keptImage, ramImagePaths, removeImage } from "../../src/restore/ram-image.ts";
import { save } from "../../src/save/index.ts";
import { tempDir } from "../../src/store/layout.ts";
import { killVm, listVms, stopVm } from "../../src/vm/index.ts";
import { flipBit } from "../support/corrupt.ts";
import { bootTestGuest, connectAgent, waitForMoreRewrites } from "../support/test-guest.ts";

const GUEST = { memoryMiB: 256, params: { memMiB: 96, hotPct: 5, hotRate: 1000 } } as const;
const CHECKPOINT = "mapped@1";

let home = "";
let ownPages = 0;
before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-it-mapped-"));
  const { vm, agent } = await bootTestGuest(home, { name: "mapped", ...GUEST });
  ownPages = (await agent.verify()).pages;
  agent.close();
  await save({ home, vm, name: CHECKPOINT, live: false, after: "pause" });
  await killVm(home, vm);
});
after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
});

/** The guest verifies all its pages and files, and its writer goes on rewriting. */
async function verifyGuest(agent: AgentClient): Promise<void> {
  const verify = await agent.verify({ timeoutMs: 120_000 });
  assert.equal(verify.bad, 0, "no page differs after the restore");
  assert.equal(verify.pages, ownPages);
  const files = await agent.files({ timeoutMs: 120_000 });
  assert.equal(files.bad, 0, "every cached data file still checksums");
  assert.ok(files.ok > 0);
  await waitForMoreRewrites(agent, verify.rewrites);
}

test("a mapped restore builds the image, a second maps it beside the first: both verify", async () => {
  const first = await restore({ home, checkpoint: CHECKPOINT, vmName: "m1", mode: "mapped" });
  assert.equal(first.image.built, true, "the first mapped restore builds the image");
  assert.equal(first.image.rebuiltBecause, null);
  assert.equal(first.accessedBits.mismatched, 0);
  assert.equal(first.accessedBits.cleared, first.accessedBits.tables);
  const kept = await keptImage(home, CHECKPOINT, await manifestOf(home, CHECKPOINT));
  assert.ok(kept !== null && kept.diskBytes > 0, "inspect sees the kept image");
  const a = await connectAgent(first.vm);
  try {
    await verifyGuest(a); // m1's writer rewrites pages: its copies, not the image's
    const second = await restore({ home, checkpoint: CHECKPOINT, vmName: "m2", mode: "mapped" });
    assert.equal(second.image.built, false, "the kept image passed its check");
    assert.ok(second.image.checkMs > 0);
    const b = await connectAgent(second.vm);
    try {
      await verifyGuest(b);
      await verifyGuest(a); // and m1 still, after m2 started on the same file
    } finally {
      b.close();
      await stopVm(home, second.vm.name);
    }
  } finally {
    a.close();
    await stopVm(home, first.vm.name);
  }
});

test("a flipped byte in the image fails its check: it is built again and the guest verifies", async () => {
  await flipBit(ramImagePaths(home, CHECKPOINT).image, 64 * 1024 * 1024 + 123); // region 32
  const restored = await restore({ home, checkpoint: CHECKPOINT, vmName: "m3", mode: "mapped" });
  assert.equal(restored.image.built, true);
  assert.match(restored.image.rebuiltBecause ?? "", /region 32 of .* does not match its sum/);
  const agent = await connectAgent(restored.vm);
  try {
    await verifyGuest(agent);
  } finally {
    agent.close();
    await stopVm(home, restored.vm.name);
  }
});

test("a mapped restore interrupted while it builds the image leaves no VM, image or temp file", async () => {
  await removeImage(home, CHECKPOINT);
  const controller = new AbortController();
  const reason = new InterruptedError("Interrupted by the test", null);
  const restoring = restore({
    home,
    checkpoint: CHECKPOINT,
    vmName: "m4",
    mode: "mapped",
    signal: controller.signal,
    onProgress: (p) => {
      if (p.phase === "building the RAM image") controller.abort(reason);
    },
  });
  await assert.rejects(restoring, (error) => error === reason);
  assert.ok(!(await listVms(home)).some((v) => v.name === "m4"), "no VM was left");
  assert.deepEqual(await readdir(tempDir(home)), [], "no temp file was left");
  await assert.rejects(stat(ramImagePaths(home, CHECKPOINT).image), { code: "ENOENT" });
  // The next mapped restore builds it and runs.
  const again = await restore({ home, checkpoint: CHECKPOINT, vmName: "m5", mode: "mapped" });
  assert.equal(again.image.built, true);
  await stopVm(home, again.vm.name);
});

test("rm removes the checkpoint's RAM image with it", async () => {
  const { dir } = ramImagePaths(home, CHECKPOINT);
  assert.ok((await stat(dir)).isDirectory());
  await new CheckpointStore({ home }).remove(CHECKPOINT);
  await assert.rejects(stat(dir), { code: "ENOENT" });
});
