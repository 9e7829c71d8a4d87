/**
 * Real QEMU, real guest, real qcow2 disk: incremental checkpoints (format 1.2). A running
 * guest is saved three times; the second and third share what their parent holds. Each
 * restores bit-exact (the guest verifies every page and file). Removing the middle one and
 * collecting garbage keeps the last restorable; a VM restored from it saves incrementally on
 * its own; a damaged parent fails a save clearly; a save without parent shares with the whole
 * store; removing everything frees every pack and layer.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CheckpointReader, CheckpointStore } from "../../src/checkpoint/index.ts";
import { restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { digestCacheDir } from "../../src/store/layout.ts";
import { killVm, listVms, stopVm } from "../../src/vm/index.ts";
import { corruptOneChunk } from "../support/corrupt.ts";
import { bootTestGuest, connectAgent, makeQcow2DataDisk } from "../support/test-guest.ts";

const GUEST = { memoryMiB: 256, params: { memMiB: 64, hotPct: 5, hotRate: 200 } } as const;

let home = "";
before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-incr-"));
});
after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
});

async function manifestOf(name: string) {
  const reader = await CheckpointReader.open(new CheckpointStore({ home }), name);
  await reader.close();
  return reader.manifest;
}

/** Restores `checkpoint` eagerly; the guest checks every page it owns and every data file. */
async function restoreAndVerify(checkpoint: string, vmName: string, keep = false) {
  const restored = await restore({ home, checkpoint, vmName, mode: "eager" });
  const agent = await connectAgent(restored.vm);
  try {
    const verify = await agent.verify({ timeoutMs: 120_000 });
    assert.equal(verify.bad, 0, `${checkpoint}: no page differs after the restore`);
    assert.ok(verify.pages >= 64 * 256, `${checkpoint}: the guest owns its pages`);
    assert.equal((await agent.files({ timeoutMs: 120_000 })).bad, 0, `${checkpoint}: files`);
  } finally {
    agent.close();
    if (!keep) await stopVm(home, restored.vm.name);
  }
  return restored.vm;
}

/** Distinct inodes of the regular files under `dir`: what the store really occupies. */
async function inodes(dir: string): Promise<Set<number>> {
  const out = new Set<number>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out.add((await stat(join(entry.parentPath, entry.name))).ino);
  }
  return out;
}

test("a chain of three incremental checkpoints: each restores bit-exact; rm of the middle keeps the last", async () => {
  const disk = join(home, "data.qcow2");
  makeQcow2DataDisk(disk);
  const { vm, agent } = await bootTestGuest(home, { name: "inc", ...GUEST, qcow2DataDisk: disk });
  agent.close();
  const first = await save({ home, vm, name: "c1" });
  assert.equal(first.parent, null, "a VM started from scratch has no parent");
  const second = await save({ home, vm, name: "c2" });
  assert.equal(second.parent, "c1", "the VM's last save is the next one's parent");
  const third = await save({ home, vm, name: "c3", after: "stop" });
  assert.equal(third.parent, "c2");
  await killVm(home, vm).catch(() => undefined);

  const m1 = await manifestOf("c1");
  const m3 = await manifestOf("c3");
  // 1.3: every save records its QEMU runtime; the shared packs are the 1.2 feature used here.
  assert.equal(m3.format, "1.3");
  assert.ok(m3.packs.length > 0, "the child names the packs it shares");
  assert.deepEqual(m3.parent?.name, "c2");
  const shared = m3.statistics.pagesShared / m3.statistics.pagesStored;
  assert.ok(shared > 0.8, `most stored pages of c3 are shared (${(shared * 100).toFixed(1)}%)`);
  assert.ok(
    m3.statistics.storedBytes < m1.statistics.storedBytes / 3,
    `c3 adds ${m3.statistics.storedBytes} bytes, c1 ${m1.statistics.storedBytes}`,
  );
  for (const name of ["c1", "c2", "c3"]) await restoreAndVerify(name, `inc-${name}`);

  const store = new CheckpointStore({ home });
  const checkpoints = join(home, "checkpoints");
  const before = await inodes(checkpoints);
  await store.remove("c2");
  await store.cleanTemp();
  const afterRm = await inodes(checkpoints);
  const c2Own = (await readdir(join(home, "checkpoints", "c3"))).filter((f) =>
    f.startsWith("pack-"),
  );
  assert.ok(c2Own.length >= 1, "c3 links the packs it shares");
  assert.ok(afterRm.size < before.size, "c2's own index, device state and manifest are freed");
  for (const f of c2Own) {
    const ino = (await stat(join(home, "checkpoints", "c3", f))).ino;
    assert.ok(afterRm.has(ino), `gc kept ${f}, which c3 reads`);
  }

  // The VM restored from c3 saves incrementally from it on its own.
  const resumed = await restoreAndVerify("c3", "inc-again", true);
  const fourth = await save({ home, vm: resumed.name, name: "c4", after: "stop" });
  assert.equal(fourth.parent, "c3", "a restored VM's origin is the checkpoint it came from");
  await killVm(home, resumed.name).catch(() => undefined);
  const fromC4 = await restoreAndVerify("c4", "inc-c4", true);

  // A damaged origin fails the next save with what to do; a full save still works.
  await corruptOneChunk(store, "c4");
  // A damaged chunk the child does not share cannot harm it, and with cached digests only the
  // shared chunks are read back: which chunk the flip hit decided the outcome (a flake). Without
  // the cache the save indexes c4 by reading every chunk, so it always meets the damage.
  await rm(digestCacheDir(home), { recursive: true, force: true });
  await assert.rejects(save({ home, vm: fromC4.name, name: "c5" }), (error: unknown) => {
    assert.ok(error instanceof Error, String(error));
    assert.match(error.message, /c4.*fails its hash check.*--full/);
    return true;
  });
  assert.ok(!(await store.list()).some((c) => c.name === "c5"), "nothing is listed");
  const full = await save({ home, vm: fromC4.name, name: "c5", parent: null });
  assert.equal(full.parent, null);
  // No parent, but identical pages anywhere in the store are shared (c5's, c3's, …).
  await save({ home, vm: fromC4.name, name: "c6", parent: null, wholeStore: true, after: "stop" });
  await killVm(home, fromC4.name).catch(() => undefined);
  const m6 = await manifestOf("c6");
  assert.equal(m6.parent, undefined);
  assert.ok(m6.statistics.pagesShared > m6.statistics.pagesStored * 0.8, "c6 shares by content");
  await restoreAndVerify("c6", "inc-c6");

  for (const name of ["c1", "c3", "c4", "c5", "c6"]) await store.remove(name);
  await store.cleanTemp();
  assert.deepEqual(await readdir(join(home, "checkpoints")), [], "nothing is listed");
  const left = (await readdir(join(home, "layers"))).filter((f) => !f.startsWith("pending"));
  assert.deepEqual(left, [], "every frozen layer was freed with the last checkpoint");
});
