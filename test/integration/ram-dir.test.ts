/**
 * Real QEMU, real guest: an eager restore into a RAM directory (ADR 0035), a tmpfs this test
 * mounts with huge pages. The guest verifies every page it owns after the restore, its RAM is
 * QEMU's file in that directory mapped in 2 MiB pages, and QEMU put nothing there before its
 * stream; a RAM directory too small for the guest leaves the RAM in a memfd, with a note.
 * Mounting needs root (CAP_SYS_ADMIN): without it the suite is skipped, saying so.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { restore } from "../../src/restore/index.ts";
import { chooseRamDir } from "../../src/restore/ram-dir.ts";
import { save } from "../../src/save/index.ts";
import { killVm, listVms, QEMU_RAM_FILE_PREFIX, startVm } from "../../src/vm/index.ts";
import { assertSharedRamEmpty } from "../support/shared-ram.ts";
import { bootTestGuest, connectAgent, testGuestSpec } from "../support/test-guest.ts";

const GUEST = { memoryMiB: 256, params: { memMiB: 96, hotPct: 5, hotRate: 1000 } } as const;
const MIB = 2 ** 20;

let home = "";
const mounted: string[] = [];
/** Why the suite cannot run here, or null. */
let cannot: string | null = null;

/** A tmpfs at `dir` with huge pages, of `sizeMiB`; false when this process may not mount. */
function mountHugeTmpfs(dir: string, sizeMiB: number): boolean {
  try {
    const options = `huge=within_size,size=${sizeMiB}m`;
    execFileSync("mount", ["-t", "tmpfs", "-o", options, "snapwake-test", dir], {
      stdio: "pipe",
    });
  } catch {
    return false;
  }
  mounted.push(dir);
  return true;
}

before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-it-ramdir-"));
  await mkdir(join(home, "ram"));
  await mkdir(join(home, "small"));
  const ok =
    mountHugeTmpfs(join(home, "ram"), GUEST.memoryMiB + 64) &&
    mountHugeTmpfs(join(home, "small"), 16);
  if (!ok) cannot = "mounting a tmpfs needs root (CAP_SYS_ADMIN) here";
});
after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  for (const dir of mounted) execFileSync("umount", [dir]);
  await rm(home, { recursive: true, force: true });
});

test("an eager restore into a RAM directory: every page verified, its RAM in 2 MiB pages", async (t) => {
  if (cannot !== null) return t.skip(cannot);
  const ramDir = join(home, "ram");
  const { vm, agent } = await bootTestGuest(home, { name: "guest-r", ...GUEST });
  const before = await agent.verify();
  assert.equal(before.bad, 0, "the guest is clean before the save");
  agent.close();
  await save({ home, vm, name: "guest-r@1", after: "stop" });

  const restored = await restore({ home, checkpoint: "guest-r@1", mode: "eager", ramDir });
  assert.equal(restored.mode, "eager");
  if (restored.mode !== "eager") return;
  assert.equal(restored.guestRam, "ram-dir", `note: ${restored.guestRamNote}`);
  assert.equal(restored.guestRamNote, null);
  assert.ok(restored.streamBytes < 8 * MIB, `the RAM was not streamed: ${restored.streamBytes}`);
  const back = await connectAgent(restored.vm);
  try {
    const verified = await back.verify({ timeoutMs: 120_000 });
    assert.equal(verified.bad, 0);
    assert.ok(verified.pages >= 96 * 256, `the guest checked its pages (${verified.pages})`);
  } finally {
    back.close();
  }
  // The guest has touched all it owns: QEMU maps its RAM file, and maps it in huge pages.
  const smaps = await readFile(`/proc/${restored.vm.pid}/smaps`, "utf8");
  const mapping = smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/).find((m) => m.includes(ramDir));
  assert.ok(mapping?.includes(`${ramDir}/${QEMU_RAM_FILE_PREFIX}`), "QEMU maps a file there");
  const pmdKiB = Number(/ShmemPmdMapped:\s+(\d+) kB/.exec(mapping ?? "")?.[1] ?? 0);
  assert.ok(pmdKiB >= 96 * 1024, `the guest's RAM is mapped in 2 MiB pages: ${pmdKiB} KiB`);
  await killVm(home, restored.vm.name);
});

test("QEMU waiting for its stream has written nothing into its file in the RAM directory", async (t) => {
  if (cannot !== null) return t.skip(cannot);
  // As with the memfd (save-restore.test.ts): zero pages stay holes, sound only while QEMU
  // itself puts no byte into that RAM before it loads a stream.
  const sizeBytes = GUEST.memoryMiB * MIB;
  const dir = join(home, "ram");
  const spec = testGuestSpec({ name: "guest-z", ...GUEST });
  const sharedRam = { id: "pc.ram", sizeBytes, dir };
  const vm = await startVm(home, spec, { incoming: "defer", paused: true, sharedRam });
  try {
    await assertSharedRamEmpty(vm.pid, sharedRam);
  } finally {
    await killVm(home, vm);
  }
});

test("a RAM directory without room for the guest's RAM leaves it in a memfd, saying why", async (t) => {
  if (cannot !== null) return t.skip(cannot);
  const choice = await chooseRamDir(join(home, "small"), GUEST.memoryMiB * MIB);
  assert.ok("note" in choice, "not chosen");
  assert.match(
    choice.note,
    /has 16 MiB free and the guest's RAM needs 256 MiB: it went into a memfd/,
  );
  assert.deepEqual(await chooseRamDir(join(home, "ram"), GUEST.memoryMiB * MIB), {
    dir: join(home, "ram"),
  });
});
