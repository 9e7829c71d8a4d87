import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { QemuError, UsageError } from "../errors.ts";
import type { QemuInstall } from "../vm/index.ts";
import { checkMachineType, explainStartFailure } from "./machine-check.ts";
import type { TargetCheckpoint } from "./target.ts";

const CHECKPOINT = {
  name: "web@1",
  manifest: { runtime: { qemuVersion: "10.0.2", machineType: "pc-i440fx-10.0" } },
} as unknown as TargetCheckpoint;

/**
 * A wrapper QEMU (no real QEMU involved) whose answer lives in another file: what it lists can
 * change while the binary, and so its cache identity, stays the same.
 */
async function withWrapper(
  body: (w: {
    home: string;
    install: QemuInstall;
    list(m: string[]): Promise<void>;
    runs(): Promise<number>;
  }) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "sw-mcheck-"));
  const binary = join(dir, "qemu-wrapper");
  const answer = join(dir, "answer");
  const log = join(dir, "runs.log");
  await writeFile(binary, `#!/bin/sh\necho "$*" >> '${log}'\ncat '${answer}'\n`);
  await chmod(binary, 0o755);
  const list = (machines: string[]) =>
    writeFile(answer, `Supported machines are:\n${machines.map((m) => `${m}  PC\n`).join("")}`);
  const runs = async () => (await readFile(log, "utf8").catch(() => "")).split("\n").length - 1;
  try {
    await body({ home: join(dir, "home"), install: { binary, dataDirs: [] }, list, runs });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function isRefusal(cause?: Error) {
  return (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.match(e.message, /web@1 with .*qemu-wrapper: it has no machine type "pc-i440fx-10\.0"/);
    assert.match(e.message, /\(QEMU 10\.0\.2\)/);
    assert.match(e.message, /This one has pc-i440fx-7\.2/);
    assert.equal(e.cause, cause);
    return true;
  };
}

test("a QEMU without the type is refused by its own answer; with it, a cached check runs none", () =>
  withWrapper(async (w) => {
    await w.list(["pc", "pc-i440fx-7.2"]);
    const m = "pc-i440fx-10.0";
    await assert.rejects(checkMachineType(w.home, CHECKPOINT, w.install, m), isRefusal());
    assert.equal(await w.runs(), 1, "a fresh answer is not asked twice");
    // Cached as lacking it: asked again before refusing, so a changed QEMU is not refused.
    await assert.rejects(checkMachineType(w.home, CHECKPOINT, w.install, m), isRefusal());
    assert.equal(await w.runs(), 2);
    await w.list(["pc", "pc-i440fx-7.2", "pc-i440fx-10.0"]);
    await checkMachineType(w.home, CHECKPOINT, w.install, m);
    assert.equal(await w.runs(), 3);
    await checkMachineType(w.home, CHECKPOINT, w.install, m);
    assert.equal(await w.runs(), 3, "the cached list has it: QEMU is not run");
  }));

test("a failed start is explained from a fresh answer, even when the cache says it has the type", () =>
  withWrapper(async (w) => {
    const m = "pc-i440fx-10.0";
    await w.list(["pc", "pc-i440fx-7.2", m]);
    await checkMachineType(w.home, CHECKPOINT, w.install, m);
    await w.list(["pc", "pc-i440fx-7.2"]); // the QEMU behind the wrapper changed
    await checkMachineType(w.home, CHECKPOINT, w.install, m); // the cache cannot know
    const failed = new QemuError("QEMU exited: unsupported machine type");
    await assert.rejects(
      explainStartFailure(w.home, CHECKPOINT, w.install, m, failed),
      isRefusal(failed),
    );
    // Another failure, or a QEMU that has the type, is left to the caller.
    await explainStartFailure(w.home, CHECKPOINT, w.install, m, new Error("not QEMU's"));
    await w.list(["pc", m]);
    await explainStartFailure(w.home, CHECKPOINT, w.install, m, failed);
    await assert.rejects(
      checkMachineType(w.home, CHECKPOINT, w.install, "pc-q35-99.0"),
      (e: unknown) => e instanceof UsageError,
    );
  }));
