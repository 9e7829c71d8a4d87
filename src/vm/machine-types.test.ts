import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { QemuError } from "../errors.ts";
import { machineTypesCacheDir } from "../store/layout.ts";
import { machineTypes } from "./machine-types.ts";
import type { QemuInstall } from "./qemu-install.ts";

/** A home and a fake QEMU that logs each run and lists `machines` (no real QEMU involved). */
interface Fake {
  readonly home: string;
  readonly dir: string;
  readonly binary: string;
  readonly install: QemuInstall;
  /** Rewrites the fake binary in place (a new size and mtime, the same inode). */
  list(machines: readonly string[]): Promise<void>;
  /** How many times the fake QEMU ran. */
  runs(): Promise<number>;
}

async function withFake(body: (fake: Fake) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "sw-machines-"));
  const binary = join(dir, "fake-qemu");
  const log = join(dir, "runs.log");
  const fake: Fake = {
    home: join(dir, "home"),
    dir,
    binary,
    install: { binary, dataDirs: [] },
    async list(machines) {
      const lines = machines.map((m) => `echo '${m}    Standard PC'`).join("\n");
      const script = `#!/bin/sh\necho "$*" >> '${log}'\necho 'Supported machines are:'\n${lines}\n`;
      await writeFile(binary, script);
      await chmod(binary, 0o755);
    },
    async runs() {
      const text = await readFile(log, "utf8").catch(() => "");
      return text.split("\n").filter((l) => l === "-machine help").length;
    },
  };
  await fake.list(["pc", "pc-i440fx-7.2"]);
  try {
    await body(fake);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function cacheFiles(home: string): Promise<string[]> {
  return readdir(machineTypesCacheDir(home)).catch(() => []);
}

test("a hit: the second ask of one binary is answered from the store, QEMU runs once", () =>
  withFake(async (fake) => {
    const first = await machineTypes(fake.home, fake.install);
    assert.equal(first.asked, true);
    assert.deepEqual([...first.names], ["pc", "pc-i440fx-7.2"]);
    const second = await machineTypes(fake.home, fake.install);
    assert.equal(second.asked, false);
    assert.deepEqual([...second.names], ["pc", "pc-i440fx-7.2"]);
    assert.equal(await fake.runs(), 1);
    const files = await cacheFiles(fake.home);
    assert.equal(files.length, 1, "one file, no temp file left");
    assert.match(files[0] ?? "", /^[0-9a-f]{64}\.json$/);
    const forced = await machineTypes(fake.home, fake.install, { ask: true });
    assert.equal(forced.asked, true, "ask: true bypasses the cache");
    assert.equal(await fake.runs(), 2);
  }));

test("a miss after the binary changes: an upgraded QEMU is asked again, its answer cached", () =>
  withFake(async (fake) => {
    await machineTypes(fake.home, fake.install);
    await fake.list(["pc", "pc-i440fx-7.2", "pc-i440fx-10.0"]);
    const upgraded = await machineTypes(fake.home, fake.install);
    assert.equal(upgraded.asked, true);
    assert.ok(upgraded.names.has("pc-i440fx-10.0"));
    const again = await machineTypes(fake.home, fake.install);
    assert.equal(again.asked, false);
    assert.ok(again.names.has("pc-i440fx-10.0"));
    assert.equal(await fake.runs(), 2);
    assert.equal((await cacheFiles(fake.home)).length, 1, "the install's file was overwritten");
  }));

test("a corrupt or foreign cache file is a miss: QEMU is asked and the file rewritten", () =>
  withFake(async (fake) => {
    await machineTypes(fake.home, fake.install);
    const [name] = await cacheFiles(fake.home);
    const file = join(machineTypesCacheDir(fake.home), name ?? "");
    const valid = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    const bad = [
      "{not json",
      "",
      "null",
      JSON.stringify({ ...valid, machines: "pc" }),
      JSON.stringify({ ...valid, machines: [] }),
      JSON.stringify({ ...valid, version: 2 }),
      JSON.stringify({ ...valid, identity: { size: "1", mtimeNs: "1", ino: "1", dev: "1" } }),
    ];
    let runs = 1;
    for (const text of bad) {
      await writeFile(file, text);
      const known = await machineTypes(fake.home, fake.install);
      runs += 1;
      assert.equal(known.asked, true, text);
      assert.ok(known.names.has("pc-i440fx-7.2"), text);
      assert.equal(await fake.runs(), runs, text);
      assert.equal((await machineTypes(fake.home, fake.install)).asked, false, "rewritten");
    }
  }));

test("another -L dir or module dir is another install; a bare name is found on PATH", () =>
  withFake(async (fake) => {
    await machineTypes(fake.home, fake.install);
    const withData = { ...fake.install, dataDirs: ["/usr/share/seabios"] };
    assert.equal((await machineTypes(fake.home, withData)).asked, true);
    const withModules = { ...fake.install, moduleDir: "/nowhere" };
    assert.equal((await machineTypes(fake.home, withModules)).asked, true);
    const path = process.env.PATH;
    process.env.PATH = `${fake.dir}:${path ?? ""}`;
    try {
      const bare = { binary: "fake-qemu", dataDirs: [] };
      assert.equal((await machineTypes(fake.home, bare)).asked, false, "the same real path");
    } finally {
      process.env.PATH = path;
    }
    assert.equal((await cacheFiles(fake.home)).length, 3);
  }));

test("an unwritable cache costs an exec per ask, never the answer", () =>
  withFake(async (fake) => {
    await mkdir(join(fake.home, "cache"), { recursive: true });
    await writeFile(machineTypesCacheDir(fake.home), "a file where the cache dir would be");
    for (let i = 1; i <= 2; i += 1) {
      const known = await machineTypes(fake.home, fake.install);
      assert.equal(known.asked, true);
      assert.ok(known.names.has("pc-i440fx-7.2"));
      assert.equal(await fake.runs(), i);
    }
  }));

test("a QEMU that cannot run is a QemuError naming it; nothing is cached", () =>
  withFake(async (fake) => {
    await writeFile(fake.binary, "#!/bin/sh\necho broken >&2\nexit 1\n");
    await assert.rejects(machineTypes(fake.home, fake.install), (e: unknown) => {
      assert.ok(e instanceof QemuError);
      assert.match(e.message, /Cannot ask .*fake-qemu for its machine types/);
      return true;
    });
    const missing = { binary: join(fake.dir, "no-such-qemu"), dataDirs: [] };
    await assert.rejects(machineTypes(fake.home, missing), QemuError);
    assert.deepEqual(await cacheFiles(fake.home), []);
  }));
