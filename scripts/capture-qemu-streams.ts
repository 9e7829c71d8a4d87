/**
 * Captures reference migration streams from a real QEMU into test/fixtures/qemu-<version>/:
 *   pc.mig                                 precopy (`migrate "exec:cat > pc.mig"`), -M pc, 256 MiB
 *   pc-postcopy.{src2dst,returnpath}.bin   both directions of a postcopy migration between two
 *                                          real QEMUs, through a recording Unix-socket proxy
 *   pc-preempt.{src2dst,returnpath,preempt}.bin  the same with postcopy-preempt (its second
 *                                          channel recorded as .preempt.bin)
 * The precopy guest is SeaBIOS with no boot device. The postcopy guest is
 * scripts/capture/fill.S, a multiboot kernel that rewrites 4 MiB at 16 MiB forever (like
 * the 7.2 fixtures): after switchover the destination faults on pages not sent yet, so the
 * return path carries real page requests. Needs binutils (as, ld). Run under the QEMU lock:
 *   flock /tmp/snapwake-qemu.lock node scripts/capture-qemu-streams.ts 10.0
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { QmpClient } from "../src/qemu/qmp/index.ts";
import { dataDirArgs, type QemuInstall, qemuEnv, resolveQemuChoice } from "../src/vm/index.ts";

const ROOT = join(import.meta.dirname, "..");
/** Precopy bandwidth while the postcopy switch is requested: slow enough that RAM is left. */
const PRECOPY_BANDWIDTH_BYTES_PER_S = 4 * 1024 * 1024;
/** How long precopy runs before `migrate-start-postcopy` (as for the 7.2 fixtures). */
const POSTCOPY_AFTER_MS = 300;
/** SeaBIOS has run its POST and sits in its boot retry loop by then. */
const BIOS_SETTLE_MS = 1000;

interface Qemu {
  child: ChildProcess;
  qmp: QmpClient;
}

async function startQemu(install: QemuInstall, dir: string, name: string, args: string[]) {
  const qmpPath = join(dir, `${name}.qmp`);
  const log = createWriteStream(join(dir, `${name}.log`));
  const child = spawn(
    install.binary,
    [
      ...dataDirArgs(install),
      ...args,
      "-display",
      "none",
      "-qmp",
      `unix:${qmpPath},server=on,wait=off`,
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: qemuEnv(install, process.env) },
  );
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const qmp = await QmpClient.connect(qmpPath, {
    timeoutMs: 30_000,
    logPath: join(dir, `${name}.log`),
  });
  return { child, qmp } satisfies Qemu;
}

async function stopQemu(q: Qemu): Promise<void> {
  const exited = new Promise((resolve) => q.child.once("exit", resolve));
  await q.qmp.execute("quit").catch(() => undefined);
  q.qmp.close();
  await exited;
}

/** Assembles scripts/capture/fill.S into a 32-bit multiboot ELF in `dir`. */
function buildFillKernel(dir: string): string {
  const object = join(dir, "fill.o");
  const elf = join(dir, "fill.elf");
  execFileSync("as", ["--32", join(import.meta.dirname, "capture", "fill.S"), "-o", object]);
  execFileSync("ld", ["-m", "elf_i386", "-Ttext=0x100000", "-e", "_start", object, "-o", elf]);
  return elf;
}

async function capturePrecopy(install: QemuInstall, dir: string, out: string): Promise<void> {
  const q = await startQemu(install, dir, "precopy", ["-M", "pc", "-m", "256"]);
  try {
    await sleep(BIOS_SETTLE_MS);
    await q.qmp.execute("migrate", { uri: `exec:cat > ${join(out, "pc.mig")}` });
    await q.qmp.waitForMigration({ timeoutMs: 60_000 });
  } finally {
    await stopQemu(q);
  }
}

/** A Unix-socket proxy: each accepted connection is joined to `target`, both directions recorded. */
function recordingProxy(listenPath: string, target: string, files: string[][]) {
  const sockets: Socket[] = [];
  const writers: WriteStream[] = [];
  let connections = 0;
  const server = createServer((client) => {
    const names = files[connections++];
    if (names === undefined) throw new Error("more migration channels than expected");
    const [forward, backward] = names.map((f) => createWriteStream(f));
    if (forward === undefined || backward === undefined) throw new Error("two files per channel");
    writers.push(forward, backward);
    const upstream = createConnection(target);
    sockets.push(client, upstream);
    client.on("data", (b) => {
      forward.write(b);
      upstream.write(b);
    });
    upstream.on("data", (b) => {
      backward.write(b);
      client.write(b);
    });
    client.on("end", () => upstream.end());
    upstream.on("end", () => client.end());
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  server.listen(listenPath);
  return {
    channels: () => connections,
    async close() {
      server.close();
      for (const s of sockets) s.destroy();
      await Promise.all(writers.map((w) => new Promise((resolve) => w.end(resolve))));
    },
  };
}

async function capturePostcopy(
  install: QemuInstall,
  dir: string,
  out: string,
  prefix: string,
  preempt: boolean,
): Promise<void> {
  const kernel = buildFillKernel(dir);
  const machine = ["-M", "pc", "-m", "2G", "-nodefaults", "-vga", "std", "-kernel", kernel];
  const capabilities = [
    { capability: "postcopy-ram" as const, state: true },
    ...(preempt ? [{ capability: "postcopy-preempt" as const, state: true }] : []),
  ];
  const dst = await startQemu(install, dir, `${prefix}-dst`, [...machine, "-incoming", "defer"]);
  const src = await startQemu(install, dir, `${prefix}-src`, machine);
  const files = [[`${prefix}.src2dst.bin`, `${prefix}.returnpath.bin`]];
  if (preempt) files.push([`${prefix}.preempt.bin`, `${prefix}.preempt-back.bin`]);
  const proxy = recordingProxy(
    join(dir, `${prefix}-proxy.sock`),
    join(dir, `${prefix}-dst.sock`),
    files.map((pair) => pair.map((f) => join(out, f))),
  );
  try {
    await dst.qmp.execute("migrate-set-capabilities", { capabilities });
    await dst.qmp.execute("migrate-incoming", { uri: `unix:${join(dir, `${prefix}-dst.sock`)}` });
    await sleep(BIOS_SETTLE_MS);
    await src.qmp.execute("migrate-set-capabilities", { capabilities });
    await src.qmp.execute("migrate-set-parameters", {
      "max-bandwidth": PRECOPY_BANDWIDTH_BYTES_PER_S,
    });
    await src.qmp.execute("migrate", { uri: `unix:${join(dir, `${prefix}-proxy.sock`)}` });
    await sleep(POSTCOPY_AFTER_MS);
    await src.qmp.execute("migrate-start-postcopy");
    const info = await src.qmp.waitForMigration({ timeoutMs: 120_000 });
    await dst.qmp.waitForMigration({ timeoutMs: 120_000 });
    console.log(`${prefix}: ${info.status}, ${proxy.channels()} channel(s)`);
  } finally {
    await stopQemu(src);
    await stopQemu(dst);
    await proxy.close();
  }
}

async function main(): Promise<void> {
  const version = process.argv[2] ?? "10.0";
  const install = resolveQemuChoice(version, join(ROOT, "build"));
  const out = join(ROOT, "test", "fixtures", `qemu-${version}`);
  await mkdir(out, { recursive: true });
  const dir = await mkdtemp(join(tmpdir(), "snapwake-capture-"));
  try {
    await capturePrecopy(install, dir, out);
    await capturePostcopy(install, dir, out, "pc-postcopy", false);
    await capturePostcopy(install, dir, out, "pc-preempt", true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
