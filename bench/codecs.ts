/**
 * Measures the page hash and the chunk codec candidates for the checkpoint format on a corpus of
 * realistic 4 KiB pages, and prints one table per question. The figures and the decisions they
 * support are recorded in docs/adr/0001 (hash) and docs/adr/0002 (compression).
 *
 * Usage: node bench/codecs.ts [--mib 64] [--seed 1] [--writer-mib 512] [--dir /tmp] [--extra DIR]
 *   [--only hash|codecs|writer]. --extra DIR adds zstd-napi and lz4-napi from DIR/node_modules,
 *   installed there, not in the project (`npm install zstd-napi@0.0.13 lz4-napi@2.10.0`).
 * Corpus (shuffled with a seeded PRNG, so runs compare): ELF pages from /usr/bin and
 * /usr/lib/x86_64-linux-gnu, text pages from /usr/share/doc, /usr/share/perl and /usr/include,
 * pages of this process's own memory (/proc/self/mem: V8 heap, libc, code: the closest thing to a
 * guest's RAM available here), sparse pages (a few words set, like page tables), random pages and
 * zero pages. Zero pages never reach the codec in the writer, so codec tables use the non-zero
 * pages only; the "all pages" line gives the ratio a whole-file compressor would see.
 * Each timing is the best of 3 windows of at least 0.3 s. Machines here are shared: compare
 * within one table, and read gaps under ~15% as noise. "MB/CPU-s" divides by this process's
 * CPU time (all its threads), which stays meaningful when another process takes a core.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import {
  chunkHashOfDigests,
  chunkHashOfPages,
  writePageDigest,
} from "../src/checkpoint/format/chunk-hash.ts";
import { beginCheckpoint, CheckpointReader, CheckpointStore } from "../src/checkpoint/index.ts";
import { prng } from "../src/checkpoint/test-support.ts";

const PAGE = 4096;
const argv = process.argv.slice(2);
const args = new Map(
  argv.flatMap((a, i) => (i % 2 === 0 ? [[a, argv[i + 1] ?? ""] as const] : [])),
);
const corpusMiB = Number(args.get("--mib") ?? 64);
const seed = Number(args.get("--seed") ?? 1);
const writerMiB = Number(args.get("--writer-mib") ?? 512);
const benchDir = args.get("--dir") ?? os.tmpdir();
const only = args.get("--only") ?? "all";
const runs = (part: string): boolean => only === "all" || only === part;
const extraDir = args.get("--extra");

const rand = prng(seed);

function filesUnder(dir: string, pred: (p: string) => boolean, max: number): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return; // unreadable directory: the corpus just skips it
    }
    for (const e of entries) {
      if (out.length >= max) return;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && pred(p)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Non-zero whole pages of the given files, taken in file order until `count`. */
function pagesOfFiles(files: string[], count: number): Buffer[] {
  const pages: Buffer[] = [];
  const zero = Buffer.alloc(PAGE);
  for (const f of files.sort(() => rand() - 0.5)) {
    const data = fs.readFileSync(f);
    for (let o = 0; o + PAGE <= data.length && pages.length < count; o += PAGE) {
      const p = data.subarray(o, o + PAGE);
      if (!p.equals(zero)) pages.push(Buffer.from(p));
    }
    if (pages.length >= count) break;
  }
  return pages;
}

function isElf(p: string): boolean {
  const head = Buffer.alloc(4);
  const fd = fs.openSync(p, "r");
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  return head.toString("latin1") === "\x7fELF";
}

/** Readable private mappings of this process: a real, mixed, in-use memory image. */
function pagesOfSelf(count: number): Buffer[] {
  const pages: Buffer[] = [];
  const zero = Buffer.alloc(PAGE);
  const fd = fs.openSync("/proc/self/mem", "r");
  for (const line of fs.readFileSync("/proc/self/maps", "latin1").split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) r/.exec(line);
    if (!m || line.includes("[vvar]") || line.includes("[vsyscall]")) continue;
    const start = Number.parseInt(m[1] ?? "0", 16);
    const end = Number.parseInt(m[2] ?? "0", 16);
    for (let a = start; a < end && pages.length < count; a += PAGE) {
      const p = Buffer.alloc(PAGE);
      if (fs.readSync(fd, p, 0, PAGE, a) === PAGE && !p.equals(zero)) pages.push(p);
    }
  }
  fs.closeSync(fd);
  return pages;
}

function sparsePage(): Buffer {
  const p = Buffer.alloc(PAGE);
  const words = 1 + Math.floor(rand() * 24);
  for (let i = 0; i < words; i++)
    p.writeUInt32LE((rand() * 2 ** 32) >>> 0, 8 * Math.floor(rand() * 512));
  return p;
}

interface Corpus {
  all: Buffer[];
  nonZero: Buffer[];
  groups: Record<string, Buffer[]>;
  mix: Record<string, number>;
}

function buildCorpus(): Corpus {
  const n = (corpusMiB * 1024 * 1024) / PAGE;
  const share = { zero: 0.35, elf: 0.2, self: 0.15, text: 0.15, sparse: 0.05, random: 0.1 };
  const want = (k: keyof typeof share) => Math.round(n * share[k]);
  const elfFiles = [
    ...filesUnder("/usr/bin", isElf, 2000),
    ...filesUnder("/usr/lib/x86_64-linux-gnu", (p) => p.includes(".so") && isElf(p), 2000),
  ];
  const textFiles = ["/usr/share/doc", "/usr/share/perl", "/usr/include"].flatMap((d) =>
    filesUnder(d, (p) => /\.(h|pm|pl|txt|md|html|c)$|copyright$|README/.test(p), 4000),
  );
  const groups: Record<string, Buffer[]> = {
    elf: pagesOfFiles(elfFiles, want("elf")),
    text: pagesOfFiles(textFiles, want("text")),
    self: pagesOfSelf(want("self")),
    sparse: Array.from({ length: want("sparse") }, sparsePage),
    random: Array.from({ length: want("random") }, () => crypto.randomBytes(PAGE)),
  };
  const zero = Array.from({ length: want("zero") }, () => Buffer.alloc(PAGE));
  const all = [...Object.values(groups).flat(), ...zero];
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [all[i], all[j]] = [all[j] as Buffer, all[i] as Buffer];
  }
  const zeroPage = Buffer.alloc(PAGE);
  const mix: Record<string, number> = { zero: zero.length };
  for (const [k, v] of Object.entries(groups)) mix[k] = v.length;
  return { all, nonZero: all.filter((p) => !p.equals(zeroPage)), groups, mix };
}

/** Best-of-3 seconds per call of `fn`, each window running at least 0.3 s. */
function timePerCall(fn: () => void): number {
  let best = Number.POSITIVE_INFINITY;
  for (let w = 0; w < 3; w++) {
    let calls = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < 300) {
      fn();
      calls++;
      t = performance.now();
    }
    best = Math.min(best, (t - t0) / 1000 / calls);
  }
  return best;
}

function table(title: string, head: string[], rows: (string | number)[][]): void {
  console.log(`\n### ${title}\n`);
  console.log(`| ${head.join(" | ")} |`);
  console.log(`|${head.map(() => "---").join("|")}|`);
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

function benchHashes(pages: Buffer[], chunks: Buffer[]): void {
  const sample = pages.slice(0, 4096);
  const perPage = (fn: (p: Buffer) => unknown) => {
    const s = timePerCall(() => {
      for (const p of sample) fn(p);
    });
    const n = sample.length;
    return [Math.round(n / s / 1000), ((1e6 * s) / n).toFixed(2), Math.round((n * PAGE) / s / 1e6)];
  };
  const zero = Buffer.alloc(PAGE);
  const dig = Buffer.alloc(32);
  const rows = [
    ["sha256 crypto.hash → Buffer", ...perPage((p) => crypto.hash("sha256", p, "buffer"))],
    ["sha256 → hex string", ...perPage((p) => crypto.hash("sha256", p, "hex"))],
    ["sha256 → binary → reused Buffer", ...perPage((p) => writePageDigest(p, dig, 0))],
    ["sha1 crypto.hash → Buffer", ...perPage((p) => crypto.hash("sha1", p, "buffer"))],
    ["blake2b512 crypto.hash", ...perPage((p) => crypto.hash("blake2b512", p, "buffer"))],
    ["zero test (Buffer.equals)", ...perPage((p) => p.equals(zero))],
  ];
  table(
    "Per-page hash (4 KiB pages, one core)",
    ["Operation", "k pages/s", "µs/page", "MB/s"],
    rows,
  );
  const c = chunks.slice(0, 64);
  const perChunk = (fn: (x: Buffer) => unknown) => {
    const t = timePerCall(() => {
      for (const x of c) fn(x);
    });
    return Math.round((c.length * (c[0]?.length ?? 0)) / t / 1e6);
  };
  table(
    "Chunk hash, 256 KiB chunks",
    ["Method", "MB/s of chunk data"],
    [
      ["sha256 of the whole chunk (bulk)", perChunk((x) => crypto.hash("sha256", x, "buffer"))],
      [
        "sha256 of 64 known page digests (writer)",
        perChunk((x) => chunkHashOfDigests(x.subarray(0, 2048))),
      ],
      ["64 page sha256 + digest list sha256 (reader)", perChunk((x) => chunkHashOfPages(x))],
    ],
  );
}

interface Codec {
  name: string;
  compress(b: Buffer): Buffer;
  decompress(b: Buffer, rawBytes: number): Buffer;
}

const zstd = (level: number): Codec => ({
  name: `zstd L${level} (node:zlib)`,
  compress: (b) =>
    zlib.zstdCompressSync(b, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }),
  decompress: (b, n) => zlib.zstdDecompressSync(b, { maxOutputLength: n }),
});
// Level -1 is not reachable through node:zlib: it uses -1 as "parameter not set" and silently
// compresses at the default level 3. -3 stands for zstd's fast negative levels.
const codecs: Codec[] = [
  zstd(-3),
  zstd(1),
  zstd(3),
  {
    name: "deflateRaw L1 (node:zlib)",
    compress: (b) => zlib.deflateRawSync(b, { level: 1 }),
    decompress: (b, n) => zlib.inflateRawSync(b, { maxOutputLength: n }),
  },
];

/** Codecs from npm packages installed outside the project (--extra), for comparison only. */
function extraCodecs(dir: string): Codec[] {
  const load = createRequire(path.join(dir, "node_modules", "_.js"));
  const zn = load("zstd-napi");
  const lz = load("lz4-napi");
  const cctx = new zn.Compressor();
  cctx.setParameters({ compressionLevel: 1 });
  const dctx = new zn.Decompressor();
  return [
    {
      name: "zstd-napi L1 (reused context)",
      compress: (b) => cctx.compress(b),
      decompress: (b) => dctx.decompress(b),
    },
    {
      name: "lz4-napi (block)",
      compress: (b) => lz.compressSync(b),
      decompress: (b) => lz.uncompressSync(b),
    },
  ];
}

function chunksOf(pages: Buffer[], pagesPerChunk: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i + pagesPerChunk <= pages.length; i += pagesPerChunk) {
    out.push(Buffer.concat(pages.slice(i, i + pagesPerChunk)));
  }
  return out;
}

function benchCodecs(pages: Buffer[], label: string): void {
  const rows: (string | number)[][] = [];
  const all = [...codecs, ...(extraDir === undefined ? [] : extraCodecs(extraDir))];
  for (const pagesPerChunk of [16, 64]) {
    const chunks = chunksOf(pages, pagesPerChunk).slice(0, 2048 / pagesPerChunk);
    const raw = chunks.reduce((a, b) => a + b.length, 0);
    for (const codec of all) {
      const packed = chunks.map((c) => codec.compress(c));
      // "stored" = what the writer keeps: the compressed frame, or the raw chunk if smaller.
      const stored = packed.reduce((a, p, i) => a + Math.min(p.length, chunks[i]?.length ?? 0), 0);
      const tc = timePerCall(() => {
        for (const c of chunks) codec.compress(c);
      });
      const td = timePerCall(() => {
        packed.forEach((p, i) => {
          codec.decompress(p, chunks[i]?.length ?? 0);
        });
      });
      const mbs = (t: number): number => Math.round(raw / t / 1e6);
      const size = `${(pagesPerChunk * PAGE) / 1024} KiB`;
      const perChunkUs = Math.round((1e6 * tc) / chunks.length);
      rows.push([codec.name, size, (raw / stored).toFixed(2), mbs(tc), mbs(td), perChunkUs]);
    }
  }
  const head = ["Codec", "Chunk", "Ratio", "Compress MB/s", "Decompress MB/s", "µs/chunk"];
  table(`Chunk codecs on ${label}`, head, rows);
}

/**
 * The real writer and reader on a guest of `writerMiB` built from `pages`; every pass over the
 * pages stamps them (first 8 bytes) so later passes are new content, not dedup hits.
 */
async function benchWriter(
  pages: Buffer[],
  label: string,
  mib = writerMiB,
): Promise<(string | number)[]> {
  const home = fs.mkdtempSync(path.join(benchDir, "snapwake-bench-"));
  const store = new CheckpointStore({ home });
  const total = (mib * 1024 * 1024) / PAGE;
  const stream = { configuration: new Uint8Array(0) };
  const w = await beginCheckpoint(store, { name: "bench", vm: {}, qemu: {}, stream });
  w.setRamBlocks([{ name: "pc.ram", lengthBytes: total * PAGE }]);
  const zero = Buffer.alloc(PAGE);
  const stamped = Buffer.alloc(PAGE);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    let data = pages[i % pages.length] as Buffer;
    if (i >= pages.length && !data.equals(zero)) {
      data.copy(stamped);
      stamped.writeDoubleLE(i, 0);
      data = stamped;
    }
    const wait = w.putPage(0, i, data);
    if (wait) await wait;
  }
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  w.setDeviceState({ sections: new Uint8Array(1024), vmdescription: null });
  const listing = await w.commit();
  const t2 = performance.now();
  const reader = await CheckpointReader.open(store, "bench");
  let visited = 0;
  await reader.forEachPage(() => {
    visited++;
  });
  const t3 = performance.now();
  await reader.verify();
  const t4 = performance.now();
  await reader.close();
  fs.rmSync(home, { recursive: true, force: true });
  if (visited !== total) throw new Error(`forEachPage visited ${visited} of ${total} pages`);
  const rate = (ms: number) => Math.round((total * PAGE) / 1e3 / ms);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const times = [rate(t1 - t0), rate(cpuMs), Math.round(t2 - t1), rate(t3 - t2), rate(t4 - t3)];
  return [label, mib, ...times, listing.compressionRatio];
}

async function writerTable(corpus: Corpus): Promise<void> {
  const whole = Buffer.concat(corpus.all);
  const z = zstd(1).compress(whole);
  console.log(
    `\nAll pages as one zstd L1 frame (\`zstd -1\` of a raw dump): ratio ${(whole.length / z.length).toFixed(2)}`,
  );
  await benchWriter(corpus.all, "warm-up (JIT, first GC), not shown", 64);
  const rows = [
    await benchWriter(corpus.all, "corpus mix (35% zero)"),
    await benchWriter(corpus.nonZero, "non-zero pages only"),
    await benchWriter(corpus.groups.elf ?? [], "ELF pages only"),
  ];
  const head = [
    "Guest pages",
    "MiB",
    "Ingest MB/s",
    "Ingest MB/CPU-s",
    "Commit ms",
    "forEachPage MB/s",
  ];
  table(
    `Writer and reader end to end (in ${benchDir}, page cache warm)`,
    [...head, "Verify MB/s", "Ratio"],
    rows,
  );
}

async function main(): Promise<void> {
  const corpus = buildCorpus();
  console.log(
    `Corpus: ${corpus.all.length} pages (${corpusMiB} MiB), seed ${seed}, mix ${JSON.stringify(corpus.mix)}`,
  );
  console.log(
    `node ${process.version}, OpenSSL ${process.versions.openssl}, zstd ${process.versions.zstd}`,
  );
  if (runs("hash")) benchHashes(corpus.nonZero, chunksOf(corpus.nonZero, 64));
  if (runs("codecs"))
    benchCodecs(corpus.nonZero, `${corpus.nonZero.length} non-zero pages (what reaches the codec)`);
  if (runs("writer")) await writerTable(corpus);
}

await main();
