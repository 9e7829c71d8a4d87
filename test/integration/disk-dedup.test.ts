/**
 * Real QEMU, real guest, real qcow2 data disk (Park et al.'s disk-duplicate exclusion): the
 * guest reads its data files into the page cache at boot; a save freezes the disk and stores
 * those pages as references to the frozen layer; restores are bit-exact; a second checkpoint
 * taken from the restored VM shares the layers; rm keeps what the other one uses; and a
 * frozen layer changed behind snapwake's back fails the restore before the guest runs.
 */
import assert from "node:assert/strict";
import { mkdtemp, open, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { loadGuestInfo } from "../../guest/index.ts";
import { CheckpointReader, CheckpointStore } from "../../src/checkpoint/index.ts";
import { LayerFile } from "../../src/disk/index.ts";
import { InvalidCheckpointError } from "../../src/errors.ts";
import { PAGE_SIZE_BYTES } from "../../src/limits.ts";
import { restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { killVm, listVms, stopVm } from "../../src/vm/index.ts";
import { bootTestGuest, connectAgent, makeQcow2DataDisk } from "../support/test-guest.ts";

/** Little anonymous memory, lots of free RAM: the page cache is most of what is in use. */
const GUEST = { memoryMiB: 256, params: { memMiB: 16, hotPct: 5, hotRate: 200 } } as const;

let home = "";
before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-disk-"));
});
after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
});

async function statsOf(name: string) {
  const reader = await CheckpointReader.open(new CheckpointStore({ home }), name);
  try {
    return { stats: reader.manifest.statistics, manifest: reader.manifest };
  } finally {
    await reader.close();
  }
}

/** Restores `checkpoint` as `vmName`; the guest checks every page it owns and every file. */
async function restoreAndVerify(
  checkpoint: string,
  vmName: string,
  opts: { stop?: boolean; mode?: "eager" | "lazy" } = {},
) {
  const stop = opts.stop ?? true;
  const lazy = opts.mode === "lazy";
  const restored = lazy
    ? await restore({ home, checkpoint, vmName, mode: "lazy", record: false })
    : await restore({ home, checkpoint, vmName, mode: "eager" });
  const agent = await connectAgent(restored.vm);
  try {
    if ("fill" in restored) await restored.fill; // every page (disk chunks too) placed
    const verify = await agent.verify({ timeoutMs: 120_000 });
    assert.equal(verify.bad, 0, `${checkpoint}: no page differs after the restore`);
    const files = await agent.files({ timeoutMs: 120_000 });
    assert.equal(files.bad, 0, `${checkpoint}: every data file checksums`);
    assert.equal(files.ok, (await loadGuestInfo()).dataFiles);
  } finally {
    agent.close();
    if (stop) await stopVm(home, restored.vm.name);
  }
  return restored.vm;
}

test("the page cache of the data files is stored as references to the frozen disk", async () => {
  const disk = join(home, "data.qcow2");
  makeQcow2DataDisk(disk);
  const { vm, agent } = await bootTestGuest(home, { name: "dd-a", ...GUEST, qcow2DataDisk: disk });
  assert.equal((await agent.files({ timeoutMs: 120_000 })).bad, 0, "files cached before the save");
  agent.close();
  const saved = await save({ home, vm, name: "dd@1", after: "continue" });
  await killVm(home, vm);

  const { stats, manifest } = await statsOf("dd@1");
  const dataPages = (await loadGuestInfo()).dataBytes / PAGE_SIZE_BYTES;
  // 1.3: every save records its QEMU runtime; the disk layers are the 1.1 feature used here.
  assert.equal(manifest.format, "1.3");
  assert.ok(manifest.layers.length > 0, "the checkpoint names its frozen layers");
  assert.ok(
    stats.pagesDisk >= 0.85 * dataPages,
    `${stats.pagesDisk} of the ${dataPages} data-file pages are disk references`,
  );
  assert.equal(stats.pagesTotal, stats.pagesZero + stats.pagesStored + stats.pagesDisk);
  assert.ok(
    saved.checkpoint.bytes < saved.streamBytes - 0.8 * dataPages * PAGE_SIZE_BYTES,
    `the checkpoint (${saved.checkpoint.bytes} B) leaves the data files out of the stream (${saved.streamBytes} B)`,
  );
  assert.equal(manifest.disks.length, 1);
  assert.equal(
    manifest.disks[0]?.layers.length,
    2,
    "frozen before the migration and at switchover",
  );
  await restoreAndVerify("dd@1", "dd-b");
  await restoreAndVerify("dd@1", "dd-lazy", { mode: "lazy" });
});

test("a checkpoint of a restored VM shares the frozen layers; rm keeps what the other uses", async () => {
  const vm = await restoreAndVerify("dd@1", "dd-c", { stop: false });
  await save({ home, vm: vm.name, name: "dd@2", after: "stop" });
  await killVm(home, vm.name); // its QEMU quit; this removes its state dir (and hold file)
  const one = (await statsOf("dd@1")).manifest;
  const two = (await statsOf("dd@2")).manifest;
  const base = one.disks[0]?.layers.at(-1);
  assert.equal(two.disks[0]?.layers.at(-1), base, "the same base layer");
  assert.ok((two.disks[0]?.layers.length ?? 0) > (one.disks[0]?.layers.length ?? 0));
  assert.ok(two.statistics.pagesDisk > 0);

  await new CheckpointStore({ home }).remove("dd@1");
  const ids = new Set(
    (await readdir(join(home, "layers"))).flatMap((f) => /^[0-9a-f]{16}(?=\.)/.exec(f) ?? []),
  );
  assert.deepEqual(
    [...ids].sort(),
    [...(two.disks[0]?.layers ?? [])].sort(),
    "exactly dd@2's layers are kept: the stopped VMs' overlays are gone",
  );
  await restoreAndVerify("dd@2", "dd-d");
});

test("a frozen layer changed behind snapwake's back fails the restore, naming layer and page", async () => {
  const store = new CheckpointStore({ home });
  const reader = await CheckpointReader.open(store, "dd@2");
  let victim: { file: string; host: number; id: string } | null = null;
  try {
    const pages = reader.blocks[0]?.pageCount ?? 0;
    for (let p = 0; p < pages && victim === null; p++) {
      const ref = reader.diskRef(0, p);
      if (ref === null || ref.layer.backing !== null) continue; // a block of the base layer
      const file = join(store.layersDir, ref.layer.file);
      const layer = await LayerFile.open(file, ref.layer.format);
      const place = layer.locate(ref.offsetBytes);
      await layer.close();
      if (place.kind !== "data") continue;
      victim = { file, host: place.hostOffset, id: ref.layer.id };
    }
  } finally {
    await reader.close();
  }
  assert.ok(victim !== null, "dd@2 references a block of its base layer");
  const fh = await open(victim.file, "r+");
  await fh.write(Buffer.from("changed behind snapwake's back"), 0, 30, victim.host + 1000);
  await fh.close();

  await assert.rejects(
    restore({ home, checkpoint: "dd@2", vmName: "dd-bad", mode: "eager" }),
    (error: unknown) => {
      assert.ok(error instanceof InvalidCheckpointError, String(error));
      assert.match(error.message, new RegExp(`frozen disk layer ${victim?.id} .*was modified`));
      assert.match(error.message, /block "pc\.ram" page \d+ refers to/);
      return true;
    },
  );
  const vms = await listVms(home);
  assert.equal(vms.filter((v) => v.name === "dd-bad").length, 0, "no VM is left behind");
});
