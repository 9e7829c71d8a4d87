import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { StoreBusyError } from "../errors.ts";
import { locksDir } from "./layout.ts";
import { StoreLock } from "./lock.ts";

const read = (checkpoint: string) => ({ checkpoint, access: "read" as const });
const write = (checkpoint: string) => ({ checkpoint, access: "write" as const });

async function withHome(body: (home: string) => Promise<void>): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), "sw-lock-"));
  try {
    await body(home);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

test("shared holders coexist unless one writes a checkpoint the other uses", () =>
  withHome(async (home) => {
    const r1 = await StoreLock.acquire(home, {
      command: "restore",
      mode: "shared",
      uses: [read("a")],
    });
    const r2 = await StoreLock.acquire(home, {
      command: "restore",
      mode: "shared",
      uses: [read("a")],
    });
    const s = await StoreLock.acquire(home, {
      command: "save",
      mode: "shared",
      uses: [write("b")],
    });
    await assert.rejects(
      StoreLock.acquire(home, { command: "save", mode: "shared", uses: [write("b")] }),
      /Cannot save checkpoint "b": `save` \(pid \d+, since .*\) is writing it/,
      "two saves of one name",
    );
    await assert.rejects(
      StoreLock.acquire(home, { command: "rm", mode: "shared", uses: [write("a")] }),
      (error: unknown) => {
        assert.ok(error instanceof StoreBusyError);
        assert.match(error.message, /Cannot rm checkpoint "a": `restore` .* is reading it/);
        assert.match(error.message, /page server/, "says why a lazy restore holds it");
        return true;
      },
    );
    await r1.release();
    await r2.release();
    await r2.release(); // idempotent
    const rmA = await StoreLock.acquire(home, {
      command: "rm",
      mode: "shared",
      uses: [write("a")],
    });
    await rmA.release();
    await s.release();
    assert.deepEqual(await readdir(locksDir(home)), [], "released holds leave no file");
  }));

test("an exclusive holder (gc) excludes everyone, and everyone excludes it", () =>
  withHome(async (home) => {
    const gc = await StoreLock.acquire(home, { command: "gc", mode: "exclusive" });
    await assert.rejects(
      StoreLock.acquire(home, { command: "save", mode: "shared", uses: [write("x")] }),
      /Cannot save now: `gc` .* holds the store alone/,
    );
    await gc.release();
    const save = await StoreLock.acquire(home, {
      command: "save",
      mode: "shared",
      uses: [write("x")],
    });
    await assert.rejects(
      StoreLock.acquire(home, { command: "gc", mode: "exclusive" }),
      /Cannot gc now: `save` .* is using the store/,
    );
    await save.add([read("y")]); // e.g. its parent, once known
    await assert.rejects(
      StoreLock.acquire(home, { command: "rm", mode: "shared", uses: [write("y")] }),
      /Cannot rm checkpoint "y": `save`/,
      "a use added later counts",
    );
    await save.release();
  }));

test("a crashed holder's hold and a crashed taker's entry file do not block anyone", () =>
  withHome(async (home) => {
    // A process that takes the lock, says so, and is then killed without releasing it.
    const script =
      `const { StoreLock } = await import(${JSON.stringify(new URL("./lock.ts", import.meta.url).href)});` +
      `await StoreLock.acquire(${JSON.stringify(home)}, { command: "gc", mode: "exclusive" });` +
      `process.stdout.write("held\\n"); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`the holder exited (${code}) before holding`)));
    });
    await assert.rejects(
      StoreLock.acquire(home, { command: "save", mode: "shared" }),
      StoreBusyError,
      "a live holder holds",
    );
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    // And a taker that died between creating the entry file and releasing it.
    await mkdir(locksDir(home), { recursive: true });
    await writeFile(join(locksDir(home), ".acquire"), `${child.pid} 1\n`);
    const save = await StoreLock.acquire(home, { command: "save", mode: "shared" });
    await save.release();
    assert.deepEqual(await readdir(locksDir(home)), [], "the dead holder's file went too");
  }));
