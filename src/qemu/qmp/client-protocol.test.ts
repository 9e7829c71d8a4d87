/**
 * QmpClient against a scripted in-process QMP server: the protocol paths real QEMU rarely
 * takes (out-of-order replies, errors, oversized lines, a peer that vanishes mid-command).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { QemuError } from "../../errors.ts";
import { QMP_LINE_BYTES_MAX } from "../../limits.ts";
import { QmpClient, QmpCommandError } from "./client.ts";

const GREETING = {
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: "test" }, capabilities: [] },
};

interface Request {
  execute: string;
  arguments?: Record<string, unknown>;
  id: unknown;
}

/** Answers each request with `reply(request, send)`; `qmp_capabilities` is answered for it. */
type Script = (request: Request, send: (message: unknown) => void, socket: Socket) => void;

let dir = "";
let serial = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "snapwake-qmp-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fakeQmp(script: Script): Promise<{ path: string; server: Server }> {
  const path = join(dir, `qmp-${serial++}.sock`);
  const server = createServer((socket) => {
    const send = (message: unknown) => socket.write(`${JSON.stringify(message)}\r\n`);
    send(GREETING);
    let buffered = "";
    socket.on("data", (chunk) => {
      buffered += chunk.toString("utf8");
      for (let end = buffered.indexOf("\n"); end !== -1; end = buffered.indexOf("\n")) {
        const request = JSON.parse(buffered.slice(0, end)) as Request;
        buffered = buffered.slice(end + 1);
        if (request.execute === "qmp_capabilities") send({ return: {}, id: request.id });
        else script(request, send, socket);
      }
    });
    socket.on("error", () => undefined); // the client may hang up first; not what is tested
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server };
}

test("connects, negotiates and reports QEMU's version", async () => {
  const { path, server } = await fakeQmp(() => assert.fail("no command expected"));
  const qmp = await QmpClient.connect(path, { timeoutMs: 5000 });
  assert.deepEqual(qmp.version.qemu, { major: 7, minor: 2, micro: 22 });
  qmp.close();
  server.close();
});

test("connect retries until the socket appears", async () => {
  const path = join(dir, "late.sock");
  const connecting = QmpClient.connect(path, { timeoutMs: 10_000 });
  const server = createServer((socket) => {
    socket.write(`${JSON.stringify(GREETING)}\n`);
    socket.on("data", () => socket.write(`${JSON.stringify({ return: {}, id: 1 })}\n`));
  });
  server.listen(path);
  const qmp = await connecting;
  qmp.close();
  server.close();
});

test("connect gives up at its deadline with a QemuError naming the socket", async () => {
  const path = join(dir, "never.sock");
  await assert.rejects(QmpClient.connect(path, { timeoutMs: 100 }), (error: Error) => {
    assert.ok(error instanceof QemuError);
    assert.match(error.message, /never\.sock did not accept a connection within 100 ms/);
    return true;
  });
});

test("connect stops retrying when its signal aborts, with the signal's reason", async () => {
  const controller = new AbortController();
  const connecting = QmpClient.connect(join(dir, "aborted.sock"), { signal: controller.signal });
  controller.abort(new QemuError("QEMU exited with code 1"));
  await assert.rejects(connecting, /QEMU exited with code 1/);
});

test("replies are matched to commands by id, in any order", async () => {
  const held: Request[] = [];
  const { path, server } = await fakeQmp((request, send) => {
    held.push(request);
    if (held.length < 2) return;
    for (const r of held.reverse()) {
      const status = r.execute === "query-status" ? "paused" : "none";
      send({ return: r.execute === "query-status" ? { status, running: false } : {}, id: r.id });
    }
  });
  const qmp = await QmpClient.connect(path);
  const [status, migrate] = await Promise.all([
    qmp.execute("query-status"),
    qmp.execute("query-migrate"),
  ]);
  assert.deepEqual(status, { status: "paused", running: false });
  assert.deepEqual(migrate, {});
  qmp.close();
  server.close();
});

test("a QMP error rejects with QmpCommandError naming the command, class and desc", async () => {
  const { path, server } = await fakeQmp((request, send) => {
    assert.deepEqual(request.arguments, { uri: "unix:/nowhere" });
    send({ error: { class: "GenericError", desc: "Failed to connect socket" }, id: request.id });
  });
  const qmp = await QmpClient.connect(path);
  await assert.rejects(qmp.execute("migrate", { uri: "unix:/nowhere" }), (error: Error) => {
    assert.ok(error instanceof QmpCommandError && error instanceof QemuError);
    assert.equal(error.errorClass, "GenericError");
    assert.match(error.message, /"migrate": Failed to connect socket \(GenericError\)/);
    return true;
  });
  qmp.close();
  server.close();
});

test("a command without a reply times out with a QemuError", async () => {
  const { path, server } = await fakeQmp(() => undefined);
  const qmp = await QmpClient.connect(path);
  await assert.rejects(
    qmp.execute("query-status", {}, { timeoutMs: 50 }),
    /did not answer QMP "query-status" within 50 ms/,
  );
  qmp.close();
  server.close();
});

test("when the peer vanishes, pending and later calls reject quoting the log", async () => {
  const logPath = join(dir, "qemu.log");
  await writeFile(logPath, "early noise\nqemu-system-x86_64: something broke\n");
  const { path, server } = await fakeQmp((_request, _send, socket) => socket.destroy());
  const qmp = await QmpClient.connect(path, { logPath });
  const expected = (error: Error) => {
    assert.ok(error instanceof QemuError);
    assert.match(error.message, /"stop" failed: QEMU exited or closed its QMP connection/);
    assert.match(error.message, /something broke/);
    return true;
  };
  await assert.rejects(qmp.execute("stop"), expected);
  await assert.rejects(qmp.execute("stop"), expected);
  assert.ok(qmp.isClosed());
  assert.match((await qmp.closed).message, /something broke/);
  server.close();
});

test("an over-long line closes the connection instead of buffering it", async () => {
  const { path, server } = await fakeQmp((_request, _send, socket) => {
    socket.write(Buffer.alloc(QMP_LINE_BYTES_MAX + 1, 0x20));
  });
  const qmp = await QmpClient.connect(path);
  await assert.rejects(qmp.execute("cont"), /longer than 1048576 bytes/);
  server.close();
});

test("a line that is not JSON closes the connection as a protocol violation", async () => {
  const { path, server } = await fakeQmp((_request, _send, socket) => socket.write("hello\n"));
  const qmp = await QmpClient.connect(path);
  await assert.rejects(qmp.execute("cont"), /not JSON: "hello"/);
  server.close();
});

test("events are queued until awaited, filtered by predicate, and fanned out", async () => {
  const { path, server } = await fakeQmp((request, send) => {
    send({
      event: "MIGRATION",
      data: { status: "setup" },
      timestamp: { seconds: 1, microseconds: 5 },
    });
    send({
      event: "MIGRATION",
      data: { status: "completed" },
      timestamp: { seconds: 2, microseconds: 0 },
    });
    send({ event: "VSERPORT_CHANGE", data: { id: "x", open: true } });
    send({ return: {}, id: request.id });
  });
  const qmp = await QmpClient.connect(path);
  const seen: string[] = [];
  const unsubscribe = qmp.on("MIGRATION", (event) => seen.push(event.data.status));
  await qmp.execute("migrate", { uri: "unix:/x" });
  const done = await qmp.waitForEvent("MIGRATION", {
    predicate: (data) => data.status === "completed",
  });
  assert.equal(done.timestampMs, 2000);
  const setup = await qmp.waitForEvent("MIGRATION");
  assert.equal(setup.data.status, "setup");
  assert.deepEqual(seen, ["setup", "completed"]);
  unsubscribe();
  await assert.rejects(qmp.waitForEvent("STOP", { timeoutMs: 20 }), /no STOP event within 20 ms/);
  qmp.close();
  server.close();
});

test("waitForMigration polls until completed and reports a failure's error-desc", async () => {
  const replies = [{ status: "setup" }, { status: "active" }, { status: "completed" }];
  const { path, server } = await fakeQmp((request, send) => {
    send({
      return: replies.shift() ?? { status: "failed", "error-desc": "disk full" },
      id: request.id,
    });
  });
  const qmp = await QmpClient.connect(path);
  const info = await qmp.waitForMigration({ timeoutMs: 5000, pollMs: 1 });
  assert.equal(info.status, "completed");
  await assert.rejects(qmp.waitForMigration({ timeoutMs: 5000 }), /Migration failed: disk full/);
  qmp.close();
  server.close();
});
