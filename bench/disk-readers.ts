/**
 * How should snapwake read frozen qcow2 layers? (docs/adr/0006). Measures, on one layer:
 *  - indexing: every own data block read once and SHA-256'd (what `freeze` does per layer);
 *  - random 4 KiB reads, one at a time (what a lazy restore's faults do), and reads in offset
 *    order (what an eager restore's disk chunks do);
 * through (1) snapwake's own parser (src/disk/layer-file.ts), (2) qemu-nbd with a minimal
 * NBD client over a Unix socket, (3) qemu-img convert to raw + read, and qemu-io per read.
 *
 *   node bench/disk-readers.ts [--mib 256] [--dir /tmp]
 */
import { execFileSync, spawn } from "node:child_process";
import crypto from "node:crypto";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BlockIndex, LayerFile } from "../src/disk/index.ts";

const { values } = parseArgs({ options: { mib: { type: "string" }, dir: { type: "string" } } });
const MIB = 1024 * 1024;
const sizeMiB = Number(values.mib ?? 256);
const RANDOM_READS = 4000;
const BLOCK = 4096;

async function makeLayer(where: string, mib: number): Promise<string> {
  const raw = join(where, "data.raw");
  const fh = await open(raw, "w");
  for (let i = 0; i < mib; i++) await fh.write(crypto.randomBytes(MIB));
  await fh.close();
  const qcow2 = join(where, "data.qcow2");
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, qcow2]);
  await rm(raw);
  return qcow2;
}

function randomOffsets(bytes: number, n: number): number[] {
  return Array.from({ length: n }, () => crypto.randomInt(bytes / BLOCK) * BLOCK);
}

const mbps = (bytes: number, ms: number) => ((bytes / MIB / ms) * 1000).toFixed(0);
const usEach = (ms: number, n: number) => ((ms * 1000) / n).toFixed(1);

async function ownParser(path: string, offsets: number[], sorted: number[]): Promise<string[]> {
  const file = await LayerFile.open(path, "qcow2");
  try {
    let t = performance.now();
    await BlockIndex.build(file);
    const index = mbps(file.virtualBytes, performance.now() - t);
    t = performance.now();
    for (const o of offsets) await file.readBlock(o);
    const random = usEach(performance.now() - t, offsets.length);
    t = performance.now();
    for (let i = 0; i < sorted.length; i += 64) await file.readBlocks(sorted.slice(i, i + 64));
    return [index, random, usEach(performance.now() - t, sorted.length)];
  } finally {
    await file.close();
  }
}

async function qemuNbd(where: string, path: string, offsets: number[], sorted: number[]) {
  const sock = join(where, "nbd.sock");
  const server = spawn("qemu-nbd", [
    "--read-only",
    "--persistent",
    "-k",
    sock,
    "-f",
    "qcow2",
    path,
  ]);
  try {
    const nbd = await NbdClient.open(sock);
    try {
      let t = performance.now();
      const chunk = MIB;
      for (let at = 0; at < nbd.size; at += chunk) {
        const data = await nbd.read(at, Math.min(chunk, nbd.size - at));
        for (let b = 0; b < data.byteLength; b += BLOCK) {
          crypto.hash("sha256", data.subarray(b, b + BLOCK), "binary");
        }
      }
      const index = mbps(nbd.size, performance.now() - t);
      t = performance.now();
      for (const o of offsets) await nbd.read(o, BLOCK);
      const random = usEach(performance.now() - t, offsets.length);
      t = performance.now();
      for (const o of sorted) await nbd.read(o, BLOCK);
      return [index, random, usEach(performance.now() - t, sorted.length)];
    } finally {
      nbd.close();
    }
  } finally {
    server.kill("SIGTERM");
  }
}

async function qemuImg(where: string, path: string, offsets: number[]): Promise<string[]> {
  const raw = join(where, "converted.raw");
  let t = performance.now();
  execFileSync("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", path, raw]);
  const fh = await open(raw, "r");
  const buf = Buffer.alloc(MIB);
  let total = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, MIB, total);
    if (bytesRead === 0) break;
    for (let b = 0; b < bytesRead; b += BLOCK) crypto.hash("sha256", buf.subarray(b, b + BLOCK));
    total += bytesRead;
  }
  await fh.close();
  const index = mbps(total, performance.now() - t);
  await writeFile(raw, "");
  const few = offsets.slice(0, 50);
  t = performance.now();
  for (const o of few) {
    execFileSync("qemu-io", ["-r", "-f", "qcow2", "-c", `read -v ${o} ${BLOCK}`, path]);
  }
  const perSpawn = usEach(performance.now() - t, few.length);
  return [`${index} (convert to raw, then read)`, `${perSpawn} (qemu-io, one process a read)`, "-"];
}

/** The smallest NBD client: fixed newstyle handshake, NBD_OPT_EXPORT_NAME, simple replies. */
class NbdClient {
  readonly #socket: Socket;
  #buffered = Buffer.alloc(0);
  #want: { bytes: number; resolve: (b: Buffer) => void } | null = null;
  size = 0;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (d: Buffer) => {
      this.#buffered = Buffer.concat([this.#buffered, d]);
      this.#pump();
    });
  }

  static async open(path: string): Promise<NbdClient> {
    let socket: Socket | null = null;
    for (let i = 0; i < 100 && socket === null; i++) {
      socket = await new Promise<Socket | null>((resolve) => {
        const s = connect(path);
        s.once("connect", () => resolve(s));
        s.once("error", () => resolve(null));
      });
      if (socket === null) await new Promise((r) => setTimeout(r, 50));
    }
    if (socket === null) throw new Error("qemu-nbd did not open its socket");
    const c = new NbdClient(socket);
    await c.#take(18); // NBDMAGIC, IHAVEOPT, handshake flags
    const hello = Buffer.alloc(4 + 16);
    hello.writeUInt32BE(3, 0); // FIXED_NEWSTYLE | NO_ZEROES
    hello.write("IHAVEOPT", 4, "latin1");
    hello.writeUInt32BE(1, 12); // NBD_OPT_EXPORT_NAME, name ""
    hello.writeUInt32BE(0, 16);
    socket.write(hello);
    const reply = await c.#take(10);
    c.size = Number(reply.readBigUInt64BE(0));
    return c;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const req = Buffer.alloc(28);
    req.writeUInt32BE(0x25609513, 0);
    req.writeUInt16BE(0, 4);
    req.writeUInt16BE(0, 6); // NBD_CMD_READ
    req.writeBigUInt64BE(1n, 8);
    req.writeBigUInt64BE(BigInt(offset), 16);
    req.writeUInt32BE(length, 24);
    this.#socket.write(req);
    const head = await this.#take(16);
    if (head.readUInt32BE(4) !== 0) throw new Error(`NBD read error ${head.readUInt32BE(4)}`);
    return this.#take(length);
  }

  close(): void {
    this.#socket.destroy();
  }

  #take(bytes: number): Promise<Buffer> {
    return new Promise((resolve) => {
      this.#want = { bytes, resolve };
      this.#pump();
    });
  }

  #pump(): void {
    const want = this.#want;
    if (want === null || this.#buffered.byteLength < want.bytes) return;
    this.#want = null;
    const out = this.#buffered.subarray(0, want.bytes);
    this.#buffered = this.#buffered.subarray(want.bytes);
    want.resolve(out);
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(values.dir ?? tmpdir(), "snapwake-disk-bench-"));
  try {
    const layer = await makeLayer(dir, sizeMiB);
    const offsets = randomOffsets(sizeMiB * MIB, RANDOM_READS);
    const sorted = [...offsets].sort((a, b) => a - b);
    const rows: string[][] = [];
    rows.push(["own parser", ...(await ownParser(layer, offsets, sorted))]);
    rows.push(["qemu-nbd + NBD client", ...(await qemuNbd(dir, layer, offsets, sorted))]);
    rows.push(["qemu-img convert / qemu-io", ...(await qemuImg(dir, layer, offsets))]);
    console.log(`layer: ${sizeMiB} MiB of random data, qcow2, 64 KiB clusters, warm page cache`);
    console.log(
      "| Reader | Index (read + SHA-256) MB/s | Random 4 KiB read µs | Sorted 4 KiB read µs |",
    );
    console.log("|---|---|---|---|");
    for (const r of rows) console.log(`| ${r.join(" | ")} |`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
