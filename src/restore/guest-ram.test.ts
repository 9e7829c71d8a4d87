/**
 * The search for QEMU's guest-RAM file, where it must give up: a process without one once QEMU
 * is up, a process that exited, an aborted restore; and what it finds in a RAM directory.
 * Finding the memfd in a real QEMU is the eager restores' integration tests'
 * (test/integration/save-restore.test.ts and the rest).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { findQemuRam, memfdRefusal } from "./guest-ram.ts";

test("a process without the memfd fails the search once QEMU is said to be up", async () => {
  // That the search waits while QEMU starts is the eager restores' to show: a search that gave
  // up early would send their RAM through the stream, and they assert it went into the memfd.
  const child = spawn("cat", [], { stdio: ["pipe", "ignore", "ignore"] }); // waits on its stdin
  try {
    const search = findQemuRam(child.pid ?? -1, { sizeBytes: 4096 });
    search.qemuUp();
    await assert.rejects(search.found, /is up without a memory-backend-memfd memfd/);
  } finally {
    child.kill("SIGKILL");
  }
});

test("a process that exited fails the search", async () => {
  const child = spawn("true", [], { stdio: "ignore" });
  const pid = child.pid ?? -1;
  await once(child, "exit"); // reaped by Node: /proc/<pid> is gone
  await assert.rejects(
    findQemuRam(pid, { sizeBytes: 4096 }).found,
    /exited before it made the guest's RAM/,
  );
});

test("an aborted restore's search rejects with the abort's reason", async () => {
  const waiting = spawn("cat", [], { stdio: ["pipe", "ignore", "ignore"] }); // waits on its stdin
  try {
    const controller = new AbortController();
    const search = findQemuRam(waiting.pid ?? -1, { sizeBytes: 4096 }, controller.signal);
    const reason = new Error("interrupted by the test");
    controller.abort(reason);
    await assert.rejects(search.found, (e) => e === reason);
  } finally {
    waiting.kill("SIGKILL");
  }
});

test("in a RAM directory the search finds the unlinked file QEMU made there, by its name", async () => {
  const dir = await mkdtemp(join(tmpdir(), "snapwake-ram-dir-"));
  // As QEMU does with a mem-path directory: a file of the block's length, open, then unlinked.
  const script =
    'f="$0/qemu_back_mem.pc.ram.Xa1b2c"; truncate -s 8192 "$f"; exec 3<>"$f"; rm "$f"; ' +
    "echo ready; exec cat";
  const child = spawn("sh", ["-c", script, dir], { stdio: ["pipe", "pipe", "ignore"] });
  try {
    await once(child.stdout, "data"); // the file is open and unlinked
    assert.deepEqual(await readdir(dir), []);
    const search = findQemuRam(child.pid ?? -1, { sizeBytes: 8192, dir });
    search.qemuUp();
    const file = await search.found;
    try {
      assert.equal((await file.stat()).size, 8192);
    } finally {
      await file.close();
    }
    const wrongLength = findQemuRam(child.pid ?? -1, { sizeBytes: 4096, dir });
    await assert.rejects(wrongLength.found, /has 8192 bytes, the checkpoint's block 4096/);
    const elsewhere = findQemuRam(child.pid ?? -1, { sizeBytes: 8192, dir: "/nowhere" });
    elsewhere.qemuUp();
    await assert.rejects(elsewhere.found, /is up without a file in \/nowhere/);
  } finally {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});

test("a spec whose extra arguments set up guest memory keeps its RAM out of a memfd", () => {
  assert.equal(memfdRefusal({ extraArgs: [] }), null);
  assert.equal(memfdRefusal({ extraArgs: ["-device", "virtio-rng-pci"] }), null);
  assert.equal(memfdRefusal(undefined), null);
  for (const arg of [
    "memory-backend-file,id=m0,size=1G,mem-path=/dev/hugepages",
    "-numa",
    "node,memdev=m0",
    "loader,file=/tmp/blob,addr=0x100000",
    "-mem-prealloc",
  ]) {
    const why = memfdRefusal({ extraArgs: ["-object", arg] });
    assert.ok(why?.includes(arg), `${arg}: ${why}`);
  }
});
