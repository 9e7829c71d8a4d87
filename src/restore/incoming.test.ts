import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { incomingPair } from "./incoming.ts";

test("incomingPair connects this process to itself: bytes written on ours reach QEMU's end", async () => {
  const { ours, qemuEnd } = await incomingPair();
  try {
    assert.equal(qemuEnd.remotePort, ours.localPort);
    assert.equal(qemuEnd.remoteAddress, "127.0.0.1");
    const got: Buffer[] = [];
    qemuEnd.on("data", (d: Buffer) => got.push(d));
    const ended = new Promise((resolve) => qemuEnd.once("end", resolve));
    qemuEnd.resume(); // paused on connect: QEMU reads it, not this process
    ours.end(Buffer.alloc(1 << 20, 7));
    await ended;
    assert.equal(Buffer.concat(got).byteLength, 1 << 20);
  } finally {
    ours.destroy();
    qemuEnd.destroy();
  }
});

test("incomingPair drops a stranger that connected to its listener first", async () => {
  let stranger: Socket | null = null;
  let strangerClosed: Promise<unknown> = Promise.resolve();
  const { ours, qemuEnd } = await incomingPair(async (port) => {
    const s = connect({ host: "127.0.0.1", port });
    stranger = s;
    s.on("error", () => undefined);
    strangerClosed = new Promise((resolve) => s.once("close", resolve));
    // Connected, so in the listener's backlog ahead of the restore's own client.
    await new Promise((resolve) => s.once("connect", resolve));
  });
  try {
    assert.equal(qemuEnd.remotePort, ours.localPort, "QEMU's end is this process's connection");
    assert.notEqual(qemuEnd.remotePort, (stranger as Socket | null)?.localPort);
    await strangerClosed; // dropped, not handed on
  } finally {
    ours.destroy();
    qemuEnd.destroy();
  }
});
