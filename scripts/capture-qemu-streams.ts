/**
 * Captures reference migration streams from a real QEMU into test/fixtures/qemu-<version>/:
 *   pc.mig                                 precopy (`migrate "exec:cat > pc.mig"`), -M pc, 256 MiB
 *   pc-postcopy.{src2dst,returnpath}.bin   both directions of a postcopy migration between two
 *                                          real QEMUs, through a recording Unix-socket proxy
 *   pc-preempt.{src2dst,returnpath,preempt}.bin  (10.0 only) the same with postcopy-preempt on
 *                                          both sides: main channel, its return path, and the
 *                                          second (preempt) channel, which must carry pages
 * The precopy guest is SeaBIOS with no boot device. The postcopy guest is
 * scripts/capture/fill.S, a multiboot kernel that rewrites 4 MiB at 16 MiB forever (like
 * the 7.2 fixtures): after switchover the destination faults on pages not sent yet, so the
 * return path carries real page requests. Needs binutils (as, ld). Run under the QEMU lock:
 *   flock /tmp/snapwake-qemu.lock node scripts/capture-qemu-streams.ts 10.0 [precopy|postcopy|preempt]…
 * (no capture named: all of them; each rewrites only its own files).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, readFileSync, statSync, type WriteStream } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { createConnection, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { UnsupportedStreamError } from "../src/errors.ts";
import {
  FILE_MAGIC,
  type RamBlock,
  readMigrationStream,
  readPreemptChannel,
} from "../src/qemu/migration/index.ts";
import { QmpClient } from "../src/qemu/qmp/index.ts";
import { dataDirArgs, type QemuInstall, qemuEnv, resolveQemuChoice } from "../src/vm/index.ts";

const ROOT = join(import.meta.dirname, "..");
/** Precopy bandwidth while the postcopy switch is requested: slow enough that RAM is left. */
const PRECOPY_BANDWIDTH_BYTES_PER_S = 4 * 1024 * 1024;
/** How long precopy runs before `migrate-start-postcopy` (as for the 7.2 fixtures). */
const POSTCOPY_AFTER_MS = 300;
/** SeaBIOS has run its POST and sits in its boot retry loop by then. */
const BIOS_SETTLE_MS = 1000;
/** Guest RAM of the preempt capture: room for fill.S's 4 MiB at 16 MiB, few zero pages. */
const PREEMPT_MEMORY_MIB = 128;
/** Runs tried before giving up on a preempt channel with no page on it. */
const PREEMPT_ATTEMPTS = 3;

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

/** One proxied connection's two directions, as recorded. */
interface RecordedChannel {
  /** What the migration source sent (source -> destination). */
  readonly forward: string;
  /** What the destination sent back on the same connection. */
  readonly backward: string;
}

/**
 * A Unix-socket proxy in front of `target`: every accepted connection (the main channel, then
 * the preempt channel when the source opens one) is joined to its own upstream connection and
 * both of its directions are recorded in `dir`, in accept order.
 */
function recordingProxy(listenPath: string, target: string, dir: string) {
  const sockets: Socket[] = [];
  const writers: WriteStream[] = [];
  const channels: RecordedChannel[] = [];
  const server = createServer((client) => {
    const n = channels.length;
    const channel = {
      forward: join(dir, `channel${n}.forward.bin`),
      backward: join(dir, `channel${n}.backward.bin`),
    };
    channels.push(channel);
    const forward = createWriteStream(channel.forward);
    const backward = createWriteStream(channel.backward);
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
    async close(): Promise<RecordedChannel[]> {
      server.close();
      for (const s of sockets) s.destroy();
      await Promise.all(writers.map((w) => new Promise((resolve) => w.end(resolve))));
      return channels;
    },
  };
}

interface PostcopyRun {
  /** Guest RAM (-m), MiB. */
  readonly memoryMiB: number;
  readonly preempt: boolean;
  /** max-postcopy-bandwidth in bytes/s; 0 = unlimited (QEMU's default). */
  readonly postcopyBandwidthBytesPerS: number;
}

/**
 * One postcopy migration between two real QEMUs through the recording proxy; returns the
 * recorded channels (in `dir`, removed with it), main channel first.
 */
async function runPostcopy(
  install: QemuInstall,
  dir: string,
  run: PostcopyRun,
): Promise<RecordedChannel[]> {
  const kernel = buildFillKernel(dir);
  const machine = ["-M", "pc", "-m", `${run.memoryMiB}`, "-nodefaults", "-vga", "std"];
  machine.push("-kernel", kernel);
  const capabilities = [
    { capability: "postcopy-ram" as const, state: true },
    ...(run.preempt ? [{ capability: "postcopy-preempt" as const, state: true }] : []),
  ];
  const dstSocket = join(dir, "dst.sock");
  const dst = await startQemu(install, dir, "dst", [...machine, "-incoming", "defer"]);
  const src = await startQemu(install, dir, "src", machine);
  const proxy = recordingProxy(join(dir, "proxy.sock"), dstSocket, dir);
  let channels: RecordedChannel[] = [];
  try {
    await dst.qmp.execute("migrate-set-capabilities", { capabilities });
    await dst.qmp.execute("migrate-incoming", { uri: `unix:${dstSocket}` });
    await sleep(BIOS_SETTLE_MS);
    await src.qmp.execute("migrate-set-capabilities", { capabilities });
    await src.qmp.execute("migrate-set-parameters", {
      "max-bandwidth": PRECOPY_BANDWIDTH_BYTES_PER_S,
      "max-postcopy-bandwidth": run.postcopyBandwidthBytesPerS,
    });
    await src.qmp.execute("migrate", { uri: `unix:${join(dir, "proxy.sock")}` });
    await sleep(POSTCOPY_AFTER_MS);
    await src.qmp.execute("migrate-start-postcopy");
    await src.qmp.waitForMigration({ timeoutMs: 120_000 });
    await dst.qmp.waitForMigration({ timeoutMs: 120_000 });
  } finally {
    await stopQemu(src);
    await stopQemu(dst);
    channels = await proxy.close();
  }
  const main = channels[0];
  if (main === undefined || !startsWithMagic(main.forward)) {
    throw new Error("the first connection is not the main channel (no QEVM header)");
  }
  return channels;
}

function startsWithMagic(path: string): boolean {
  const bytes = readFileSync(path);
  return bytes.byteLength >= 4 && bytes.readUInt32BE(0) === FILE_MAGIC;
}

async function capturePostcopy(install: QemuInstall, dir: string, out: string): Promise<void> {
  const run = { memoryMiB: 2048, preempt: false, postcopyBandwidthBytesPerS: 0 };
  const channels = await runPostcopy(install, await mkdtemp(join(dir, "postcopy-")), run);
  const [main] = channels;
  if (main === undefined || channels.length !== 1) {
    throw new Error(`postcopy: ${channels.length} channels, expected 1`);
  }
  await copyFile(main.forward, join(out, "pc-postcopy.src2dst.bin"));
  await copyFile(main.backward, join(out, "pc-postcopy.returnpath.bin"));
  console.log(
    `pc-postcopy: main ${sizeOf(main.forward)} B, return path ${sizeOf(main.backward)} B`,
  );
}

/**
 * postcopy-preempt: the source opens a second connection at switchover and sends the pages the
 * destination asks for over it. Postcopy's background transfer is held to
 * PRECOPY_BANDWIDTH_BYTES_PER_S so the guest, rewriting its 4 MiB on the destination, faults
 * on pages before they arrive: the preempt channel then carries their answers. A run whose
 * preempt channel has no page record is retried (up to PREEMPT_ATTEMPTS).
 */
async function capturePreempt(install: QemuInstall, dir: string, out: string): Promise<void> {
  const run = {
    memoryMiB: PREEMPT_MEMORY_MIB,
    preempt: true,
    postcopyBandwidthBytesPerS: PRECOPY_BANDWIDTH_BYTES_PER_S,
  };
  for (let attempt = 1; attempt <= PREEMPT_ATTEMPTS; attempt++) {
    const runDir = await mkdtemp(join(dir, "preempt-"));
    const channels = await runPostcopy(install, runDir, run);
    const [main, preempt] = channels;
    if (main === undefined || preempt === undefined || channels.length !== 2) {
      throw new Error(`postcopy-preempt: ${channels.length} channels, expected 2`);
    }
    if (sizeOf(preempt.backward) !== 0) {
      throw new Error("postcopy-preempt: the destination wrote on the preempt channel");
    }
    const blocks = await blocksOf(main.forward);
    let pages = 0;
    const summary = await readPreemptChannel(bytesOf(preempt.forward), blocks, {
      page: () => void pages++,
      zeroPage: () => undefined,
    });
    console.log(
      `pc-preempt attempt ${attempt}: main ${sizeOf(main.forward)} B, return path ` +
        `${sizeOf(main.backward)} B, preempt ${sizeOf(preempt.forward)} B (${pages} pages, ` +
        `${summary.records - pages} zero pages, EOS ${summary.eos})`,
    );
    if (pages > 0) {
      await copyFile(main.forward, join(out, "pc-preempt.src2dst.bin"));
      await copyFile(main.backward, join(out, "pc-preempt.returnpath.bin"));
      await copyFile(preempt.forward, join(out, "pc-preempt.preempt.bin"));
      return;
    }
  }
  throw new Error(`postcopy-preempt: no page on the preempt channel in ${PREEMPT_ATTEMPTS} runs`);
}

/** The RAM block list of a recorded main channel (its RAM START). */
async function blocksOf(mainChannel: string): Promise<readonly RamBlock[]> {
  let blocks: readonly RamBlock[] = [];
  const visitor = {
    ramBlocks: (list: readonly RamBlock[]) => {
      blocks = list;
    },
    page: () => undefined,
    zeroPage: () => undefined,
    deviceState: () => undefined,
  };
  // The precopy reader stops at the first postcopy command, long after the RAM START.
  await readMigrationStream(bytesOf(mainChannel), visitor).catch((error: unknown) => {
    if (!(error instanceof UnsupportedStreamError)) throw error;
  });
  return blocks;
}

async function* bytesOf(path: string): AsyncIterable<Uint8Array> {
  yield new Uint8Array(readFileSync(path));
}

function sizeOf(path: string): number {
  return statSync(path).size;
}

const CAPTURES = ["precopy", "postcopy", "preempt"] as const;
type Capture = (typeof CAPTURES)[number];

function isCapture(name: string): name is Capture {
  return (CAPTURES as readonly string[]).includes(name);
}

async function main(): Promise<void> {
  const version = process.argv[2] ?? "10.0";
  const chosen = process.argv.slice(3);
  const unknown = chosen.filter((name) => !isCapture(name));
  if (unknown.length > 0) throw new Error(`unknown capture ${unknown}: ${CAPTURES.join(", ")}`);
  // 7.2's preempt channel differs (an EOS, opened at start: docs/migration-protocol.md §6.8).
  const defaults: Capture[] = version === "10.0" ? [...CAPTURES] : ["precopy", "postcopy"];
  const captures = chosen.length > 0 ? chosen.filter(isCapture) : defaults;
  const install = resolveQemuChoice(version, join(ROOT, "build"));
  const out = join(ROOT, "test", "fixtures", `qemu-${version}`);
  await mkdir(out, { recursive: true });
  const dir = await mkdtemp(join(tmpdir(), "snapwake-capture-"));
  try {
    if (captures.includes("precopy")) await capturePrecopy(install, dir, out);
    if (captures.includes("postcopy")) await capturePostcopy(install, dir, out);
    if (captures.includes("preempt")) await capturePreempt(install, dir, out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
