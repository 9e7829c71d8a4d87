/**
 * Real QEMU, real guest: save a running test guest under load (its hot writer rewrites
 * 1000 pages/s through the live save), kill it, restore the checkpoint eagerly, lazily and
 * partially (from the write set the live save kept), and let the guest verify every page it
 * owns and every file it cached after each (eagerly twice: the RAM written into QEMU's memfd,
 * and all of it through QEMU's stream). QEMU waiting for a stream has put nothing into that
 * memfd. Then the failure paths: a corrupt checkpoint starts no guest; QEMU killed mid-save
 * lists no checkpoint and leaves no temp file.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CheckpointStore } from "../../src/checkpoint/index.ts";
import { InvalidCheckpointError, QemuError } from "../../src/errors.ts";
import { restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { tempDir } from "../../src/store/layout.ts";
import { killVm, listVms, startVm, stopVm } from "../../src/vm/index.ts";
import { listSources } from "../../src/wss/index.ts";
import { corruptOneChunk } from "../support/corrupt.ts";
import { assertSharedRamEmpty } from "../support/shared-ram.ts";
import {
  bootTestGuest,
  connectAgent,
  testGuestSpec,
  waitForMoreRewrites,
} from "../support/test-guest.ts";

const GUEST = { memoryMiB: 256, params: { memMiB: 96, hotPct: 5, hotRate: 1000 } } as const;

let home = "";
/** The guest's own page count before the live save of guest-a@1 (0 until that test ran). */
let guestPages = 0;
before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-it-"));
});
after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
});

test("save, kill, eager restore: the guest verifies all its memory and files and keeps running", async () => {
  const { vm, agent } = await bootTestGuest(home, { name: "guest-a", ...GUEST });
  const before = await agent.verify();
  assert.equal(before.bad, 0, "the guest is clean before the save");
  assert.ok(before.pages >= 96 * 256, `the guest owns its pages (${before.pages})`);
  agent.close();

  const saved = await save({ home, vm, name: "guest-a@1", after: "pause" });
  await killVm(home, vm);
  assert.equal(saved.live, true, "the guest ran during the save");
  assert.ok(saved.writeSetPages > 0, "the hot writer dirtied pages during the save");
  assert.ok(saved.checkpoint.bytes > 0);
  assert.ok(
    saved.stream.blocks.some((b) => b.finalDataPages > 0),
    "the stream carried data pages",
  );

  const restored = await restore({
    home,
    checkpoint: "guest-a@1",
    vmName: "guest-a2",
    mode: "eager",
  });
  assert.equal(restored.guestRam, "memfd", "this process wrote the guest's RAM (ADR 0034)");
  assert.equal(restored.guestRamNote, null);
  assert.ok(restored.streamBytes < 8 * 2 ** 20, `the stream is small: ${restored.streamBytes}`);
  const back = await connectAgent(restored.vm);
  try {
    const verify = await back.verify({ timeoutMs: 120_000 });
    assert.equal(verify.bad, 0, "no page differs after the restore");
    assert.equal(verify.pages, before.pages);
    assert.ok(verify.rewrites >= before.rewrites, "the hot writer continued from where it was");
    const files = await back.files({ timeoutMs: 120_000 });
    assert.equal(files.bad, 0, "every cached data file still checksums");
    assert.ok(files.ok > 0);
    await waitForMoreRewrites(back, verify.rewrites);
    guestPages = before.pages;
  } finally {
    back.close();
    await stopVm(home, restored.vm.name);
  }
});

test("the same live save under load restores lazily, then partially from its write set: both verify", async () => {
  assert.ok(guestPages > 0, "the live save of guest-a@1 ran first");
  // A live save on 10.0 keeps two estimates; partial takes the write set by name, so this
  // tests the pages the hot writer dirtied during the save going first.
  const kinds = await listSources(home, "guest-a@1");
  assert.ok(kinds.includes("write-set") && kinds.includes("accessed-bits"), kinds.join(", "));
  for (const mode of ["lazy", "partial"] as const) {
    const restored = await restore({
      home,
      checkpoint: "guest-a@1",
      vmName: `guest-a-${mode}`,
      mode,
      ...(mode === "partial" ? { workingSetKind: "write-set" } : {}),
    });
    assert.equal(restored.mode, mode);
    if (mode === "partial") assert.ok(restored.pagesPrefetched > 0, "the write set went first");
    const back = await connectAgent(restored.vm);
    try {
      // The guest reads all its memory while the fill is still under way.
      const verifying = back.verify({ timeoutMs: 120_000 });
      await restored.fill;
      const verify = await verifying;
      assert.equal(verify.bad, 0, `${mode}: no page differs after the restore`);
      assert.equal(verify.pages, guestPages);
      assert.equal((await back.files({ timeoutMs: 120_000 })).bad, 0, `${mode}: files checksum`);
    } finally {
      back.close();
      await stopVm(home, restored.vm.name);
    }
  }
});

test("a non-live save pauses the guest only while QEMU spools; its checkpoint restores clean", async () => {
  const { vm, agent } = await bootTestGuest(home, { name: "guest-s", ...GUEST });
  // Asked while snapwake reads the spooled stream: a guest still paused would answer only
  // once its checkpoint was verified and listed.
  let answered: Promise<number> | null = null;
  let verifyingAt = Number.POSITIVE_INFINITY;
  const saved = await save({
    home,
    vm,
    name: "guest-s@1",
    live: false,
    onProgress: (p) => {
      if (p.phase === "verifying") verifyingAt = performance.now();
      if (p.phase === "receiving" && answered === null)
        answered = agent.stats().then((s) => {
          assert.ok(s.rewrites > 0, "its writer runs");
          return performance.now();
        });
    },
  });
  assert.ok(answered !== null, "the save reported reading the stream");
  assert.ok((await answered) < verifyingAt, "the guest answered before its checkpoint was checked");
  agent.close();
  assert.ok(saved.resumedMs !== null && saved.resumedMs < saved.wallMs, `${saved.resumedMs}`);
  assert.equal(saved.writeSetPages, 0, "a paused guest writes nothing during the save");
  assert.equal((await vm.qmp.execute("query-status", {})).running, true, "the guest runs again");
  await killVm(home, vm);
  const restored = await restore({
    home,
    checkpoint: "guest-s@1",
    vmName: "guest-s2",
    mode: "eager",
    writeGuestRam: false, // every page through QEMU's stream, as before ADR 0034
  });
  assert.equal(restored.guestRam, "stream");
  assert.ok(restored.streamBytes > 96 * 2 ** 20, `every page was sent: ${restored.streamBytes}`);
  const back = await connectAgent(restored.vm);
  try {
    assert.equal((await back.verify({ timeoutMs: 120_000 })).bad, 0);
  } finally {
    back.close();
    await stopVm(home, restored.vm.name);
  }
});

test("QEMU waiting for its stream has written nothing into the guest-RAM memfd a restore fills", async () => {
  // An eager restore leaves zero pages as holes and writes the rest while QEMU starts: that is
  // sound only while QEMU itself puts no byte into that RAM before it loads a stream.
  const sizeBytes = GUEST.memoryMiB * 2 ** 20;
  const spec = testGuestSpec({ name: "guest-z", ...GUEST });
  const sharedRam = { id: "pc.ram", sizeBytes };
  const vm = await startVm(home, spec, { incoming: "defer", paused: true, sharedRam });
  try {
    await assertSharedRamEmpty(vm.pid, sharedRam);
  } finally {
    await killVm(home, vm);
  }
});

test("a checkpoint with a corrupt chunk fails to restore with a clear error and starts no guest", async () => {
  const store = new CheckpointStore({ home });
  await corruptOneChunk(store, "guest-a@1");
  await assert.rejects(
    restore({ home, checkpoint: "guest-a@1", vmName: "guest-bad", mode: "eager" }),
    (error: unknown) => {
      assert.ok(error instanceof InvalidCheckpointError, `got ${String(error)}`);
      assert.match(error.message, /chunk/);
      return true;
    },
  );
  const vms = await listVms(home);
  assert.equal(vms.filter((v) => v.name === "guest-bad").length, 0, "no VM is left behind");
});

for (const how of [
  { after: "continue", phase: "spooling", what: "spooling its stream" },
  { after: "pause", phase: "receiving", what: "streaming over the socket" },
] as const)
  test(`QEMU killed in the middle of a save (${how.what}) leaves no checkpoint listed`, async () => {
    const name = `guest-k${how.after === "pause" ? "p" : ""}`;
    const { vm, agent } = await bootTestGuest(home, { name, ...GUEST });
    agent.close();
    let killed = false;
    const saving = save({
      home,
      vm,
      name: `${name}@1`,
      after: how.after,
      onProgress: (p) => {
        if (!killed && p.phase === how.phase && p.doneBytes > 0) {
          killed = true;
          process.kill(vm.pid, "SIGKILL");
        }
      },
    });
    await assert.rejects(saving, (error: unknown) => {
      assert.ok(error instanceof Error, String(error));
      assert.ok(
        error instanceof QemuError || /truncat|ended|closed/i.test(error.message),
        error.message,
      );
      return true;
    });
    assert.ok(killed, "the save was interrupted while receiving");
    const names = (await new CheckpointStore({ home }).list()).map((c) => c.name);
    assert.ok(!names.includes(`${name}@1`), `listed: ${names.join(", ")}`);
    // The truncated stream leaks nothing: the writer's temp directory and its pack handle go.
    assert.deepEqual(await readdir(tempDir(home)).catch(() => []), [], "no temp entry stays");
    const open: string[] = [];
    for (const fd of await readdir("/proc/self/fd")) {
      const target = await readlink(`/proc/self/fd/${fd}`).catch(() => "");
      if (target.startsWith(home)) open.push(target);
    }
    assert.deepEqual(open, [], "no file of the store stays open");
    await killVm(home, vm);
  });
