/**
 * Real QEMU 7.2 and 10.0 (docs/qemu-versions.md): the key save/restore paths on 7.2 (the
 * other tests run on 10.0, the reference), a 7.2 checkpoint restored on 10.0 on its own
 * machine type, and a 10.0 checkpoint refused by 7.2 before its QEMU starts. The guest
 * verifies every page it owns after each restore. The 7.2 restores go through a wrapper QEMU
 * that logs its arguments and execs the real one: the log shows which QEMU runs a restore made
 * (the machine-type query, the VM's `-incoming defer`). Where the host has no 7.2 (Debian 13)
 * and SNAPWAKE_QEMU_7_2 names none, the tests that need it are skipped, saying so.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CheckpointReader, CheckpointStore } from "../../src/checkpoint/index.ts";
import { UsageError } from "../../src/errors.ts";
import { restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { layersDir, locksDir } from "../../src/store/layout.ts";
import { killVm, listVms, type QemuInstall, stopVm } from "../../src/vm/index.ts";
import { qemu10, qemu72 } from "../support/qemu.ts";
import { bootTestGuest, connectAgent } from "../support/test-guest.ts";

const GUEST = { memoryMiB: 256, params: { memMiB: 96, hotPct: 5, hotRate: 1000 } } as const;
const QEMU_10 = qemu10();
const { qemu: QEMU_72, skip: NO_72 } = qemu72();
const LIMIT = { timeout: 600_000 } as const;
/** For the tests that need QEMU 7.2: skipped, with the reason, where there is none. */
const WITH_72 = { ...LIMIT, skip: NO_72 } as const;

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

let home = "";
let bin = "";
/** QEMU 7.2 behind a wrapper that appends each run's arguments to wrapperLog, then execs it. */
let wrapped72: QemuInstall | null = null;
let wrapperLog = "";
before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-ver-"));
  bin = await mkdtemp(join(tmpdir(), "snapwake-ver-bin-"));
  if (QEMU_72 === null) return;
  const real = execFileSync("sh", ["-c", `command -v ${QEMU_72.binary}`], { encoding: "utf8" });
  wrapperLog = join(bin, "runs.log");
  const wrapper = join(bin, "qemu-wrapper");
  await writeFile(
    wrapper,
    `#!/bin/sh\nprintf '%s\\n' "$*" >> '${wrapperLog}'\nexec '${real.trim()}' "$@"\n`,
  );
  await chmod(wrapper, 0o755);
  wrapped72 = { ...QEMU_72, binary: wrapper };
});
after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(home, { recursive: true, force: true });
  await rm(bin, { recursive: true, force: true });
});

/** QEMU 7.2 itself, in a test that is skipped without it. */
function q72(): QemuInstall {
  assert.ok(QEMU_72 !== null, "the test is skipped without QEMU 7.2");
  return QEMU_72;
}

/** QEMU 7.2 behind the logging wrapper, in a test that is skipped without it. */
function w72(): QemuInstall {
  assert.ok(wrapped72 !== null, "the test is skipped without QEMU 7.2");
  return wrapped72;
}

/** The wrapper's runs since the last call: "query" (-machine help) or "vm" (-incoming). */
let logSeen = 0;
async function wrapperRuns(): Promise<string[]> {
  const lines = (await readFile(wrapperLog, "utf8").catch(() => "")).split("\n").slice(0, -1);
  const fresh = lines.slice(logSeen);
  logSeen = lines.length;
  return fresh.map((l) =>
    l === "-machine help" ? "query" : l.includes("-incoming defer") ? "vm" : `other: ${l}`,
  );
}

/** Nothing of a refused restore is left: no VM, no overlay, no holder of the store lock. */
async function assertNothingLeft(vmName: string): Promise<void> {
  assert.ok(!(await listVms(home)).some((v) => v.name === vmName), "no VM was started");
  assert.deepEqual(await readdir(layersDir(home)).catch(() => []), [], "no overlay was made");
  const holders = (await readdir(locksDir(home)).catch(() => [])).filter((f) =>
    f.endsWith(".json"),
  );
  assert.deepEqual(holders, [], "the store lock was released");
}

async function runtimeOf(checkpoint: string) {
  const reader = await CheckpointReader.open(new CheckpointStore({ home }), checkpoint);
  try {
    return { runtime: reader.manifest.runtime, format: reader.manifest.format };
  } finally {
    await reader.close();
  }
}

async function verifyRestored(vm: { name: string; agentSocket: string | null }): Promise<void> {
  const agent = await connectAgent(vm);
  try {
    const verify = await agent.verify({ timeoutMs: 120_000 });
    assert.equal(verify.bad, 0, "no page differs after the restore");
    assert.ok(verify.pages > 0);
  } finally {
    agent.close();
    await stopVm(home, vm.name);
  }
}

test(
  "QEMU 7.2: a live save pauses the guest (TCG), records 7.2, restores eager, lazy and mapped clean",
  WITH_72,
  async () => {
    const { vm, agent } = await bootTestGuest(home, { name: "v72", ...GUEST, qemu: q72() });
    agent.close();
    const saved = await save({ home, vm, name: "v72@1" });
    assert.equal(saved.live, false, "a 7.2 TCG save is never live");
    assert.match(saved.pausedBecause ?? "", /QEMU 7\.2\.\d+ under TCG/);
    assert.equal((await vm.qmp.execute("query-status", {})).running, true, "it runs again");
    await killVm(home, vm);
    const { runtime, format } = await runtimeOf("v72@1");
    assert.equal(format, "1.3");
    assert.match(runtime?.qemuVersion ?? "", /^7\.2\.\d+$/);
    assert.equal(runtime?.machineType, "pc-i440fx-7.2");

    const eager = await restore({
      home,
      checkpoint: "v72@1",
      vmName: "v72-eager",
      qemu: w72(),
      mode: "eager",
    });
    assert.deepEqual(await wrapperRuns(), ["query", "vm"], "asked once, before the VM's QEMU");
    assert.equal(eager.guestRam, "memfd", "7.2's memfd took the RAM (ADR 0034)");
    await verifyRestored(eager.vm);
    const lazy = await restore({
      home,
      checkpoint: "v72@1",
      mode: "lazy",
      vmName: "v72-lazy",
      qemu: w72(),
    });
    assert.deepEqual(await wrapperRuns(), ["vm"], "the cached machine types: no query");
    await lazy.fill;
    await verifyRestored(lazy.vm);
    const mapped = await restore({
      home,
      checkpoint: "v72@1",
      mode: "mapped",
      vmName: "v72-mapped",
      qemu: w72(),
    });
    assert.deepEqual(await wrapperRuns(), ["vm"]);
    assert.equal(mapped.image.built, true);
    await verifyRestored(mapped.vm);
  },
);

test("a 7.2 checkpoint restores on 10.0 on machine type pc-i440fx-7.2", WITH_72, async () => {
  const restored = await restore({
    home,
    checkpoint: "v72@1",
    vmName: "v72-on-10",
    qemu: QEMU_10,
    mode: "eager",
  });
  const vms = await listVms(home);
  assert.ok(vms.some((v) => v.name === "v72-on-10"));
  await verifyRestored(restored.vm);
});

test("QEMU 10.0: a live save stays live and records 10.0", LIMIT, async () => {
  const { vm, agent } = await bootTestGuest(home, { name: "v10", ...GUEST, qemu: QEMU_10 });
  agent.close();
  const saved = await save({ home, vm, name: "v10@1" });
  assert.equal(saved.live, true);
  assert.equal(saved.pausedBecause, null);
  await killVm(home, vm);
  const { runtime } = await runtimeOf("v10@1");
  assert.match(runtime?.qemuVersion ?? "", /^10\.0\.\d+$/);
  assert.equal(runtime?.machineType, "pc-i440fx-10.0");
});

test("7.2 refuses a 10.0 checkpoint before its QEMU starts", WITH_72, async () => {
  const refusal = /no machine type "pc-i440fx-10\.0".*QEMU 10\.0\.\d+/;
  await assert.rejects(
    restore({ home, checkpoint: "v10@1", vmName: "v10-on-72", qemu: w72(), mode: "eager" }),
    (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, refusal);
      return true;
    },
  );
  // The cached list lacks the type, so QEMU is asked again before the refusal; never started.
  assert.deepEqual(await wrapperRuns(), ["query"], "only the machine-type query ran");
  await assertNothingLeft("v10-on-72");

  // The CLI's detached lazy restore starts QEMU beside its page server (ADR 0015): refused
  // there too, before that QEMU is spawned.
  const cli = await runCli(["restore", "v10@1", "--mode", "lazy", "--name", "v10-on-72-lazy"], {
    SNAPWAKE_QEMU: w72().binary,
  });
  assert.equal(cli.code, 2, `a usage error's exit code: ${cli.stderr}`);
  assert.match(cli.stderr.replaceAll("\n", " "), refusal);
  assert.deepEqual(await wrapperRuns(), ["query"], "only the machine-type query ran");
  await assertNothingLeft("v10-on-72-lazy");
});

test("the 10.0 checkpoint restores on 10.0", LIMIT, async () => {
  const restored = await restore({
    home,
    checkpoint: "v10@1",
    vmName: "v10-back",
    qemu: QEMU_10,
    mode: "eager",
  });
  await verifyRestored(restored.vm);
});

function runCli(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, SNAPWAKE_HOME: home, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stderr })));
}
