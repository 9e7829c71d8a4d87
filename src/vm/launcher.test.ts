/**
 * Managed VMs against a real QEMU (7.2 is the reference). The VMs are paused (-S), diskless,
 * 64 MiB TCG machines without a kernel: QEMU comes up and answers QMP, no guest needed.
 */
import assert from "node:assert/strict";
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { NotFoundError, QemuError, UsageError } from "../errors.ts";
import { killVm, openVm, stopVm } from "./control.ts";
import { type ManagedVm, startVm } from "./launcher.ts";
import { isQemuAlive } from "./process.ts";
import { listVms } from "./registry.ts";
import { parseVmSpec } from "./spec.ts";
import { vmPaths } from "./state-dir.ts";

let home = "";
const started: ManagedVm[] = [];

before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-vm-"));
});
after(async () => {
  for (const vm of started) await killVm(home, vm);
  await rm(home, { recursive: true, force: true });
});

function spec(name: string, extra: Record<string, unknown> = {}) {
  return parseVmSpec({ name, memoryMiB: 64, ...extra }, { baseDir: home });
}

async function start(name: string, where = home): Promise<ManagedVm> {
  const vm = await startVm(where, spec(name), { paused: true });
  started.push(vm);
  return vm;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

test("a paused VM starts, answers QMP, lists, reopens and stops", async () => {
  const vm = await start("paused-1");
  const paths = vmPaths(home, "paused-1");
  assert.equal(vm.stateDir, paths.stateDir);
  assert.equal(Number(await readFile(paths.pidFile, "utf8")), vm.pid);
  const argv = JSON.parse(await readFile(paths.cmdlineFile, "utf8"));
  assert.deepEqual(argv, [vm.qemuBinary, ...vm.args]);
  assert.equal(JSON.parse(await readFile(paths.specFile, "utf8")).memoryMiB, 64);
  assert.ok(await exists(paths.agentSocket), "the agent's serial socket exists");
  assert.equal(vm.agentSocket, paths.agentSocket);

  const version = await vm.qmp.execute("query-version");
  assert.equal(`${version.qemu.major}.${version.qemu.minor}`, "7.2");
  assert.equal((await vm.qmp.execute("query-status")).status, "prelaunch");
  await vm.qmp.execute("cont");
  assert.equal((await vm.qmp.execute("query-status")).status, "running");
  await vm.qmp.execute("stop");
  assert.equal((await vm.qmp.execute("query-status")).status, "paused");

  vm.close(); // QEMU serves one QMP client at a time: free it for listVms and openVm
  const [listing] = await listVms(home);
  assert.deepEqual(listing, {
    name: "paused-1",
    stateDir: paths.stateDir,
    pid: vm.pid,
    alive: true,
    memoryMiB: 64,
    status: "paused",
  });
  const reopened = await openVm(home, "paused-1");
  assert.equal(reopened.pid, vm.pid);
  assert.deepEqual(reopened.args, vm.args);
  assert.equal((await reopened.qmp.execute("query-status")).status, "paused");

  await stopVm(home, reopened);
  assert.equal(await reopened.exited, null);
  assert.equal(await vm.exited, 0, "QEMU exited cleanly after quit");
  assert.equal(await exists(paths.stateDir), false);
  assert.deepEqual(await listVms(home), []);
});

test("a second VM with a live name is refused; a stale state dir is cleared", async () => {
  const vm = await start("dup");
  await assert.rejects(startVm(home, spec("dup"), { paused: true }), (error: Error) => {
    assert.ok(error instanceof UsageError);
    assert.match(error.message, /"dup" is already running .*snapwake vm stop dup.*another name/);
    return true;
  });
  assert.equal(
    (await vm.qmp.execute("query-status")).status,
    "prelaunch",
    "the first VM is intact",
  );
  await stopVm(home, vm);

  // A stale dir whose pid is alive but is not this VM's QEMU (pid reuse): not a live VM.
  const stale = vmPaths(home, "dup");
  await mkdir(stale.stateDir, { recursive: true });
  await writeFile(stale.pidFile, `${process.pid}\n`);
  const [listing] = await listVms(home);
  assert.deepEqual([listing?.name, listing?.alive, listing?.memoryMiB], ["dup", false, null]);
  const again = await start("dup");
  assert.equal((await again.qmp.execute("query-status")).status, "prelaunch");
  assert.equal(await exists(vmPaths(home, "dup").startingFile), false, "removed once QMP is up");
  await stopVm(home, again);
});

test("a VM that another process is still starting is not mistaken for stale", async () => {
  const starting = vmPaths(home, "starting");
  await mkdir(starting.stateDir, { recursive: true });
  await writeFile(starting.startingFile, `${process.pid}\n`); // a live starter, no QEMU pid yet
  await assert.rejects(startVm(home, spec("starting")), /"starting" is being started by process/);
  assert.equal(await exists(starting.startingFile), true, "the other start is left alone");
  await rm(starting.stateDir, { recursive: true });
});

test("QEMU that fails to start gives a QemuError with its message and leaves nothing", async () => {
  const bad = spec("bad-kernel", { kernel: "no-such-vmlinuz" });
  await assert.rejects(startVm(home, bad, { paused: true }), (error: Error) => {
    assert.ok(error instanceof QemuError);
    assert.match(error.message, /could not open kernel file '.*no-such-vmlinuz'/);
    return true;
  });
  assert.equal(await exists(vmPaths(home, "bad-kernel").stateDir), false);

  const noBinary = startVm(home, spec("no-binary"), { qemuBinary: "/nonexistent/qemu" });
  await assert.rejects(noBinary, /Cannot run QEMU \(spawn \/nonexistent\/qemu ENOENT\); install/);
  assert.deepEqual(await readdir(join(home, "vms")), []);
});

test("after SIGKILL, exited settles and QMP calls reject with QemuError", async () => {
  const vm = await start("killed");
  process.kill(vm.pid, "SIGKILL");
  const pending = assert.rejects(vm.qmp.execute("query-status"), QemuError);
  assert.equal(await vm.exited, null, "killed by a signal: no exit code");
  await pending;
  await assert.rejects(vm.qmp.execute("cont"), /QEMU exited or closed its QMP connection/);
  assert.equal(await isQemuAlive(vm.pid, vmPaths(home, "killed").pidFile), false);
  await assert.rejects(openVm(home, "killed"), /"killed" is not running: its QEMU has exited/);
  const [listing] = await listVms(home);
  assert.deepEqual([listing?.name, listing?.alive, listing?.status], ["killed", false, undefined]);
  await stopVm(home, "killed"); // removes what the dead VM left
  assert.deepEqual(await listVms(home), []);
});

test("stopVm by name: QMP quit when QMP is free, SIGTERM when it is held", async () => {
  const free = await start("by-name-free");
  free.close();
  await stopVm(home, "by-name-free");
  assert.equal(await free.exited, 0);

  const held = await start("by-name-held");
  await stopVm(home, "by-name-held", { timeoutMs: 5000 }); // our connection keeps QMP busy
  assert.equal(await held.exited, 0, "QEMU exits cleanly on SIGTERM");
  await assert.rejects(held.qmp.execute("query-status"), QemuError);
  assert.deepEqual(await listVms(home), []);
});

test("unknown names are NotFoundError", async () => {
  await assert.rejects(openVm(home, "nobody"), NotFoundError);
  await assert.rejects(stopVm(home, "nobody"), /No managed VM named "nobody"; `snapwake vm ls`/);
  await killVm(home, "nobody"); // nothing to kill is fine
});

test("a home with a comma in its path works (QEMU option escaping)", async () => {
  const odd = join(home, "a,b");
  const vm = await startVm(odd, spec("comma"), { paused: true });
  started.push(vm);
  assert.equal((await vm.qmp.execute("query-status")).status, "prelaunch");
  await stopVm(odd, vm);
  assert.equal(await exists(vmPaths(odd, "comma").stateDir), false);
});

test("a VM without an agent has no agent socket", async () => {
  const vm = await startVm(home, spec("no-agent", { agent: false }), { paused: true });
  started.push(vm);
  assert.equal(vm.agentSocket, null);
  assert.equal(await exists(vmPaths(home, "no-agent").agentSocket), false);
  assert.ok(!vm.args.some((arg) => arg.includes("agent.sock")));
  await stopVm(home, vm);
});

test("a VM started with incoming: defer receives a migration from another VM", async () => {
  const source = await start("mig-src");
  const target = await startVm(home, spec("mig-dst"), { incoming: "defer", paused: true });
  started.push(target);
  assert.ok(target.args.includes("-incoming"));
  assert.equal((await target.qmp.execute("query-status")).status, "inmigrate");
  const uri = `unix:${join(target.stateDir, "in.sock")}`;
  await target.qmp.execute("migrate-incoming", { uri });
  await source.qmp.execute("migrate-set-parameters", { "max-bandwidth": 2 ** 40 });
  await source.qmp.execute("migrate", { uri });
  const [sent, received] = await Promise.all([
    source.qmp.waitForMigration({ timeoutMs: 60_000 }),
    target.qmp.waitForMigration({ timeoutMs: 60_000 }),
  ]);
  assert.deepEqual([sent.status, received.status], ["completed", "completed"]);
  assert.equal((await target.qmp.execute("query-status")).running, false, "-S keeps it paused");
  await stopVm(home, source);
  await stopVm(home, target);
});
