/**
 * QmpClient against a real QEMU (7.2 is the reference): a paused, diskless 64 MiB TCG machine
 * needs no guest kernel. QEMU is spawned directly here; src/vm/ is above this layer.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, open, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { QemuError } from "../../errors.ts";
import { errorCode } from "../../util/index.ts";
import { QmpClient } from "./client.ts";

const QEMU = "qemu-system-x86_64";
const MIGRATION_MAGIC = 0x5145564d; // "QEVM"
const MIGRATION_VERSION = 3;

interface Qemu {
  child: ChildProcess;
  qmp: QmpClient;
  logPath: string;
}

let dir = "";
let serial = 0;
const started: ChildProcess[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "snapwake-qmp-qemu-"));
});
after(async () => {
  for (const child of started) if (child.exitCode === null) child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

/** A paused (-S) 64 MiB TCG VM with no devices, and a negotiated QMP client. */
async function startQemu(): Promise<Qemu> {
  const n = serial++;
  const qmpPath = join(dir, `qmp-${n}.sock`);
  const logPath = join(dir, `qemu-${n}.log`);
  const log = await open(logPath, "w");
  const args = ["-nodefaults", "-no-user-config", "-display", "none", "-machine", "pc,accel=tcg"];
  args.push("-m", "64M", "-S", "-qmp", `unix:${qmpPath},server=on,wait=off`);
  const child = spawn(QEMU, args, { stdio: ["ignore", log.fd, log.fd] });
  await log.close();
  started.push(child);
  const controller = new AbortController();
  child.on("error", (error) => controller.abort(error));
  child.on("exit", (code) => controller.abort(new QemuError(`QEMU exited with code ${code}`)));
  try {
    const qmp = await QmpClient.connect(qmpPath, { logPath, signal: controller.signal });
    return { child, qmp, logPath };
  } catch (error) {
    const missing = errorCode(error) === "ENOENT";
    if (missing)
      assert.fail(`${QEMU} is not installed: run \`npm run setup\` (Debian: qemu-system-x86)`);
    throw error;
  }
}

async function quit(qemu: Qemu): Promise<void> {
  const exited = once(qemu.child, "exit");
  await qemu.qmp.execute("quit");
  await exited;
}

test("QEMU 7.2 answers query-version and query-status, stop and cont emit events", async () => {
  const qemu = await startQemu();
  const { qmp } = qemu;
  const version = await qmp.execute("query-version");
  assert.equal(`${version.qemu.major}.${version.qemu.minor}`, "7.2");
  assert.deepEqual(qmp.version.qemu, version.qemu);
  const prelaunch = await qmp.execute("query-status");
  assert.deepEqual([prelaunch.status, prelaunch.running], ["prelaunch", false]);
  await qmp.execute("cont");
  await qmp.waitForEvent("RESUME", { timeoutMs: 5000 });
  assert.equal((await qmp.execute("query-status")).status, "running");
  await qmp.execute("stop");
  await qmp.waitForEvent("STOP", { timeoutMs: 5000 });
  const paused = await qmp.execute("query-status");
  assert.deepEqual([paused.status, paused.running], ["paused", false]);
  const ramblocks = await qmp.execute("human-monitor-command", { "command-line": "info ramblock" });
  assert.match(ramblocks, /pc\.ram/);
  await quit(qemu);
});

test("a QMP error from QEMU names the command and QEMU's reason", async () => {
  const qemu = await startQemu();
  await assert.rejects(
    qemu.qmp.execute("migrate-incoming", { uri: "unix:/nowhere" }),
    /QEMU refused QMP command "migrate-incoming": .*-incoming.*\(GenericError\)/,
  );
  await quit(qemu);
});

test("after SIGKILL, pending and later commands reject with QemuError", async () => {
  const qemu = await startQemu();
  const exited = once(qemu.child, "exit");
  qemu.child.kill("SIGKILL");
  const pending = qemu.qmp.execute("query-status");
  await assert.rejects(pending, QemuError);
  await exited;
  await assert.rejects(qemu.qmp.execute("query-status"), (error: Error) => {
    assert.ok(error instanceof QemuError);
    assert.match(error.message, /QEMU exited or closed its QMP connection/);
    assert.match(error.message, /QEMU wrote nothing to its log/);
    return true;
  });
});

test("a paused VM migrates into a Unix socket as a QEVM v3 stream", async () => {
  const qemu = await startQemu();
  const { qmp } = qemu;
  const streamPath = join(dir, "migration.sock");
  const chunks: Buffer[] = [];
  const server = createServer((socket) => socket.on("data", (chunk: Buffer) => chunks.push(chunk)));
  await new Promise<void>((resolve) => server.listen(streamPath, resolve));
  const received = once(server, "connection").then(([socket]) => once(socket, "close"));
  await qmp.execute("migrate-set-parameters", { "max-bandwidth": 2 ** 40 });
  await qmp.execute("migrate", { uri: `unix:${streamPath}` });
  const info = await qmp.waitForMigration({ timeoutMs: 60_000 });
  assert.equal(info.status, "completed");
  assert.ok((info.ram?.total ?? 0) >= 64 * 1024 * 1024, "reports the RAM it sent");
  await received;
  const stream = Buffer.concat(chunks);
  assert.equal(stream.readUInt32BE(0), MIGRATION_MAGIC);
  assert.equal(stream.readUInt32BE(4), MIGRATION_VERSION);
  assert.equal((await qmp.execute("query-status")).status, "postmigrate");
  server.close();
  await quit(qemu);
});
