import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { processAlive } from "./process-alive.ts";

test("processAlive: this process lives, a reaped child does not", () => {
  assert.equal(processAlive(process.pid), true);
  const child = spawnSync(process.execPath, ["-e", ""]);
  assert.equal(child.status, 0);
  assert.equal(processAlive(child.pid ?? 0), false);
});

test("processAlive: ids that cannot name one process are false, never a process group", () => {
  for (const pid of [0, -1, -process.pid, 1.5, Number.NaN, 2 ** 40]) {
    assert.equal(processAlive(pid), false, String(pid));
  }
});

test("processAlive: a process we may not signal still counts (EPERM)", (t) => {
  if (process.getuid?.() === 0) return t.skip("root may signal every process");
  assert.equal(processAlive(1), true);
});
