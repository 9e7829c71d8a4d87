/**
 * The RAM directory's checks (ADR 0035): which mount a path is on, and what a directory that
 * cannot help gets. A huge-page tmpfs needs a mount, so the restore into one is the eager
 * integration tests' (test/integration/ram-dir.test.ts).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { UsageError } from "../errors.ts";
import { chooseRamDir, mountOf } from "./ram-dir.ts";
import { restore } from "./restore.ts";

const mounts = () => readFile("/proc/self/mountinfo", "utf8");

const MOUNTINFO = [
  "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
  "30 22 0:25 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683748k",
  "41 22 0:40 / /run/vm\\040ram rw,relatime - tmpfs none rw,size=8388608k,huge=within_size",
  "42 41 0:41 / /run/vm\\040ram rw,relatime - tmpfs none rw,size=1024k",
  "",
].join("\n");

test("a path is on the mount that is its longest ancestor, the last of equals", () => {
  assert.equal(mountOf(MOUNTINFO, "/home/a")?.fsType, "ext4");
  assert.equal(mountOf(MOUNTINFO, "/dev/shm/x")?.mountPoint, "/dev/shm");
  assert.equal(mountOf(MOUNTINFO, "/dev/shmem")?.mountPoint, "/"); // not a path boundary
  const over = mountOf(MOUNTINFO, "/run/vm ram/x");
  assert.equal(over?.mountPoint, "/run/vm ram");
  assert.deepEqual(over?.superOptions, ["rw", "size=1024k"]); // mounted over the huge one
  assert.equal(mountOf("", "/x"), null);
});

test("a RAM directory that is missing, a file, or not on a tmpfs is an error saying what to do", async () => {
  const dir = await mkdtemp(join(tmpdir(), "snapwake-ram-dir-"));
  try {
    await assert.rejects(
      chooseRamDir(join(dir, "missing"), 4096),
      (e) =>
        e instanceof UsageError && /does not exist: mount a tmpfs with huge pages/.test(e.message),
    );
    await writeFile(join(dir, "file"), "");
    await assert.rejects(chooseRamDir(join(dir, "file"), 4096), /is not a directory/);
    const root = mountOf(await mounts(), dir);
    if (root?.fsType !== "tmpfs") await assert.rejects(chooseRamDir(dir, 4096), /not a tmpfs/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a tmpfs without huge pages leaves the RAM in a memfd, with a note", async (t) => {
  const mount = mountOf(await mounts(), "/dev/shm");
  if (mount?.fsType !== "tmpfs" || mount.superOptions.some((o) => o.startsWith("huge="))) {
    t.skip("/dev/shm is not a tmpfs without huge pages here");
    return;
  }
  const choice = await chooseRamDir("/dev/shm", 4096);
  assert.ok("note" in choice);
  assert.match(choice.note, /is a tmpfs without huge pages .*went into a memfd/);
});

test("a RAM directory given to a restore that is not eager is refused before anything starts", async () => {
  const home = await mkdtemp(join(tmpdir(), "snapwake-ram-dir-home-"));
  try {
    for (const mode of ["lazy", "partial", "auto", "mapped"] as const) {
      await assert.rejects(
        restore({ home, checkpoint: "web-1@1", mode, ramDir: "/dev/shm" }),
        (e) =>
          e instanceof UsageError &&
          new RegExp(`a ${mode} restore does not use one`).test(e.message),
      );
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});
