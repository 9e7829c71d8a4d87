/**
 * Real QEMU, real guest: saves and restores cancelled part-way leave the VM and the store as
 * they were. A save interrupted early in the stream, after --stop-first paused the guest, and
 * in the pre-switchover pause leaves the guest running (its agent answers), nothing listed and
 * no temp file; a restore interrupted after QEMU started leaves no VM. Then the command line:
 * SIGINT during `snapwake save` and SIGTERM during a detached `snapwake restore` exit 130 and
 * 143 with one line, and `snapwake ls` / `vm ls` show nothing new; a detached restore whose
 * page server refuses stops the QEMU the command had started. Last, a save whose
 * `migrate` QEMU refuses leaks nothing and leaves no unhandled rejection.
 *
 * Interrupts are placed by the operations' own progress (deterministic), and in the CLI tests
 * by waiting for the state the command has reached (its temp directory, its page server's log).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CheckpointStore } from "../../src/checkpoint/index.ts";
import { InterruptedError } from "../../src/errors.ts";
import { restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { restoresDir, tempDir, vmDir } from "../../src/store/layout.ts";
import { rejectionsChecked } from "../../src/test-support.ts";
import { killVm, listVms, type ManagedVm, openVm, startVm } from "../../src/vm/index.ts";
import {
  bootTestGuest,
  connectAgent,
  makeQcow2DataDisk,
  testGuestSpec,
} from "../support/test-guest.ts";

const GUEST = { memoryMiB: 256, params: { memMiB: 96, hotPct: 5, hotRate: 1000 } } as const;
const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const POLL_MS = 20;

let home = "";
before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-sig-"));
});
after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
});

/** The store and the VM as an interrupted save must leave them. */
async function assertUntouched(vm: ManagedVm): Promise<void> {
  assert.deepEqual(await new CheckpointStore({ home }).list(), [], "nothing is listed");
  assert.deepEqual(await readdir(tempDir(home)).catch(() => []), [], "no temp entry stays");
  assert.deepEqual(await openStoreFiles(), [], "no file of the store stays open");
  const status = await vm.qmp.execute("query-status", {});
  assert.equal(status.status, "running", "the guest runs as before the save");
  const agent = await connectAgent(vm);
  try {
    await agent.ping();
    const stats = await agent.stats();
    assert.ok(stats.rewrites > 0, "the guest's writer still runs");
  } finally {
    agent.close();
  }
  assert.deepEqual(await locks(), [], "the store lock was released");
}

async function openStoreFiles(): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir("/proc/self/fd")) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => "");
    if (target.startsWith(home)) out.push(target);
  }
  return out;
}

async function locks(): Promise<string[]> {
  return (await readdir(join(home, "locks")).catch(() => [])).filter((f) => f.endsWith(".json"));
}

/** A save of `vm` that aborts itself when `when` first holds for a progress report. */
async function interruptedSave(
  vm: ManagedVm,
  name: string,
  when: (phase: string) => boolean,
  extra: { live?: boolean; after?: "pause"; spool?: boolean } = {},
): Promise<void> {
  const controller = new AbortController();
  const phases: string[] = [];
  await assert.rejects(
    save({
      home,
      vm,
      name,
      ...extra,
      signal: controller.signal,
      onProgress: (p) => {
        phases.push(p.phase);
        if (!controller.signal.aborted && when(p.phase))
          controller.abort(new InterruptedError("test interrupt", "SIGINT"));
      },
    }),
    (error: unknown) => {
      assert.ok(error instanceof InterruptedError, `got ${String(error)}`);
      return true;
    },
  );
  assert.ok(controller.signal.aborted, `the save reached the point (phases: ${phases})`);
}

test("a save interrupted while QEMU spools, or while the spool is read, leaves the guest running", async () => {
  const { vm, agent } = await bootTestGuest(home, { name: "sig-a", ...GUEST });
  agent.close();
  try {
    await interruptedSave(vm, "sig-a@1", (phase) => phase === "spooling");
    await assertUntouched(vm);
    await interruptedSave(vm, "sig-a@2", (phase) => phase === "spooling", { live: false });
    await assertUntouched(vm);
    // The guest runs already while the spooled stream is read (ADR 0033).
    await interruptedSave(vm, "sig-a@2", (phase) => phase === "receiving", { live: false });
    await assertUntouched(vm);
    // Without the spool the stream comes over the socket: interrupted there, the guest runs
    // again, as it does when a save that leaves it paused is interrupted.
    await interruptedSave(vm, "sig-a@2", (phase) => phase === "receiving", { spool: false });
    await assertUntouched(vm);
    await interruptedSave(vm, "sig-a@2", (phase) => phase === "receiving", { after: "pause" });
    await assertUntouched(vm);
    // The VM is not left half-migrated: it saves normally afterwards.
    const saved = await save({ home, vm, name: "sig-a@3" });
    assert.equal(saved.checkpoint.name, "sig-a@3");
  } finally {
    await killVm(home, vm);
  }
});

test("a save interrupted in the pre-switchover pause resumes the guest; its disk stays writable", async () => {
  const disk = join(home, "sig-b.qcow2");
  makeQcow2DataDisk(disk);
  const { vm, agent } = await bootTestGuest(home, {
    name: "sig-b",
    ...GUEST,
    qcow2DataDisk: disk,
  });
  agent.close();
  try {
    await store().remove("sig-a@3");
    await interruptedSave(vm, "sig-b@1", (phase) => phase === "freezing disks at switchover");
    await assertUntouched(vm);
    const info = await vm.qmp.execute("query-migrate", {});
    assert.equal(info.status, "cancelled", "the migration was cancelled, not completed");
    const block = await vm.qmp.execute("query-block", {});
    assert.ok(
      block.some((b) => b.inserted !== undefined && b.inserted.ro === false),
      "the data disk is writable",
    );
  } finally {
    await killVm(home, vm);
  }
});

test("a restore interrupted while it writes the guest's RAM stops QEMU and adds no VM", async () => {
  const { vm, agent } = await bootTestGuest(home, { name: "sig-c", ...GUEST });
  agent.close();
  await save({ home, vm, name: "sig-c@1", after: "stop" });
  const controller = new AbortController();
  await assert.rejects(
    restore({
      home,
      checkpoint: "sig-c@1",
      vmName: "sig-c2",
      mode: "eager",
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === "writing guest RAM" && p.doneBytes > 0)
          controller.abort(new InterruptedError("test interrupt", "SIGTERM"));
      },
    }),
    InterruptedError,
  );
  assert.ok(controller.signal.aborted, "the restore was writing RAM when interrupted");
  const names = (await listVms(home)).map((v) => v.name);
  assert.ok(!names.includes("sig-c2"), `no VM is registered: ${names}`);
  assert.deepEqual(await readdir(vmDir(home, "sig-c2")).catch(() => "gone"), "gone");
  assert.deepEqual(await locks(), [], "the store lock was released");
  assert.deepEqual(
    (await store().list()).map((c) => c.name),
    ["sig-c@1"],
  );
});

test("`snapwake save` exits 130 on SIGINT with one line; the VM runs, nothing is listed", async () => {
  const booted = await bootTestGuest(home, { name: "sig-d", ...GUEST });
  booted.agent.close();
  booted.vm.qmp.close(); // QEMU serves one QMP client: the command's
  try {
    await store().remove("sig-c@1");
    const cli = run(["save", "sig-d", "--name", "sig-d@1"]);
    // The checkpoint writer's temp directory exists once QEMU's stream has begun.
    await until(async () => (await readdir(tempDir(home)).catch(() => [])).length > 0, cli);
    cli.child.kill("SIGINT");
    const { code, stderr } = await cli.done;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /^snapwake save: interrupted by SIGINT: .*nothing was saved.*\n$/);
    const vm = await openVm(home, "sig-d");
    try {
      await assertUntouched(vm);
    } finally {
      vm.qmp.close();
    }
    const ls = await run(["ls", "--json"]).done;
    assert.deepEqual(JSON.parse(ls.stdout), []);
  } finally {
    await killVm(home, "sig-d");
  }
});

test("a detached `snapwake restore` exits 143 on SIGTERM: its page server stops, no VM is added", async () => {
  const { vm, agent } = await bootTestGuest(home, { name: "sig-e", ...GUEST });
  agent.close();
  await save({ home, vm, name: "sig-e@1", after: "stop" });
  // A slow store (1 MB/s, 1 s a read) keeps the page server busy opening the checkpoint.
  const cli = run(["restore", "sig-e@1", "--name", "sig-e2", "--mode", "lazy"], {
    SNAPWAKE_STORE_THROTTLE: "1,1000",
  });
  // The page server holds the store lock once its restore has begun.
  await until(async () => (await locks()).length > 0, cli);
  cli.child.kill("SIGTERM");
  const { code, stderr } = await cli.done;
  assert.equal(code, 143, stderr);
  assert.match(stderr, /^snapwake restore: interrupted by SIGTERM: .*\n$/);
  const vms = JSON.parse((await run(["vm", "ls", "--json"]).done).stdout) as { name: string }[];
  assert.ok(!vms.some((v) => v.name === "sig-e2"), "no VM is registered");
  const records = (await readdir(restoresDir(home, "sig-e@1"))).filter((f) => f.endsWith(".json"));
  assert.deepEqual(records, [], "no restore record claims anything");
  assert.deepEqual(await locks(), [], "the page server released the store lock");
  await store().remove("sig-e@1"); // not held by anyone
});

test("a detached restore its page server refuses leaves nothing: the QEMU the command started is gone", async () => {
  const { vm, agent } = await bootTestGuest(home, { name: "sig-g", ...GUEST });
  agent.close();
  await save({ home, vm, name: "sig-g@1", after: "stop" });
  // The command starts QEMU while the server starts (ADR 0015); the server then refuses.
  const args = ["restore", "sig-g@1", "--name", "sig-g2", "--mode", "partial"];
  const cli = run([...args, "--working-set", "trace"]);
  const { code, stderr } = await cli.done;
  assert.equal(code, 2, stderr);
  assert.match(stderr, /has no trace working set/);
  assert.deepEqual(await qemuPidsNamed("sig-g2"), [], "the started QEMU was stopped");
  const vms = JSON.parse((await run(["vm", "ls", "--json"]).done).stdout) as { name: string }[];
  assert.ok(!vms.some((v) => v.name === "sig-g2"), "no VM is registered");
  assert.equal(await readdir(vmDir(home, "sig-g2")).catch(() => null), null, "no VM state");
  assert.deepEqual(await locks(), [], "both processes released the store lock");
  await store().remove("sig-g@1");
});

/** Pids of live processes whose command line names VM `name` (`-name NAME`). */
async function qemuPidsNamed(name: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
    const at = argv.indexOf("-name");
    if (at >= 0 && argv[at + 1] === name) pids.push(Number(entry));
  }
  return pids;
}

test("a save whose migrate QEMU refuses fails cleanly: no temp file, no unhandled rejection", async () => {
  const unhandled: unknown[] = [];
  const note = (reason: unknown) => unhandled.push(reason);
  process.on("unhandledRejection", note);
  // A VM waiting for an incoming migration refuses to be a migration's source.
  const vm = await startVm(home, testGuestSpec({ name: "sig-f", ...GUEST }), {
    incoming: "defer",
  });
  try {
    await assert.rejects(save({ home, vm, name: "sig-f@1" }), /refused QMP command "migrate"/);
    assert.deepEqual(await readdir(tempDir(home)).catch(() => []), [], "no temp entry stays");
    assert.deepEqual(await openStoreFiles(), [], "no file of the store stays open");
    assert.deepEqual(await locks(), [], "the store lock was released");
    await killVm(home, vm); // QEMU's exit would reject a connection still being awaited
    // The conditions: QEMU is gone, its QMP connection has closed (what was pending on it has
    // been rejected), and Node has checked those rejections for a handler.
    await Promise.all([vm.exited, vm.qmp.closed]);
    await rejectionsChecked();
    assert.deepEqual(unhandled, []);
  } finally {
    process.off("unhandledRejection", note);
    await killVm(home, "sig-f").catch(() => undefined);
  }
});

function store(): CheckpointStore {
  return new CheckpointStore({ home });
}

interface Cli {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

function run(args: readonly string[], env: Record<string, string> = {}): Cli {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, SNAPWAKE_HOME: home, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once("close", (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

/** Polls `condition` until it holds; fails if the command ended first. */
async function until(condition: () => Promise<boolean>, cli: Cli): Promise<void> {
  let ended = false;
  cli.done.then(() => {
    ended = true;
  });
  for (;;) {
    if (await condition()) return;
    if (ended) {
      const r = await cli.done;
      assert.fail(`the command ended (${r.code}) before it got there: ${r.stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
