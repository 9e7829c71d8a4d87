import assert from "node:assert/strict";
import { test } from "node:test";
import { QemuError } from "../../errors.ts";
import { QMP_EVENTS_QUEUED_MAX } from "../../limits.ts";
import { QmpEventQueue } from "./events.ts";

const pass = (n: number) => ({
  name: "MIGRATION_PASS" as const,
  data: { pass: n },
  timestampMs: n,
});

test("the queue keeps the newest events when nobody waits", async () => {
  const queue = new QmpEventQueue();
  for (let n = 0; n < QMP_EVENTS_QUEUED_MAX + 3; n++) queue.push(pass(n));
  assert.equal(queue.dropped, 3);
  const oldest = await queue.waitFor("MIGRATION_PASS", () => true, 10);
  assert.equal(oldest.data.pass, 3);
  assert.equal(queue.drain().length, QMP_EVENTS_QUEUED_MAX - 1);
});

test("an event goes to one waiter only, the earliest matching one", async () => {
  const queue = new QmpEventQueue();
  const first = queue.waitFor("MIGRATION_PASS", (d) => d.pass > 1, 1000);
  const second = queue.waitFor("MIGRATION_PASS", () => true, 1000);
  queue.push(pass(1));
  queue.push(pass(2));
  assert.equal((await second).data.pass, 1);
  assert.equal((await first).data.pass, 2);
  assert.deepEqual(queue.drain(), []);
});

test("closing rejects current and later waiters", async () => {
  const queue = new QmpEventQueue();
  const waiting = queue.waitFor("STOP", () => true, 1000);
  queue.close(new QemuError("gone"));
  await assert.rejects(waiting, /gone/);
  await assert.rejects(
    queue.waitFor("STOP", () => true, 1000),
    /gone/,
  );
});
