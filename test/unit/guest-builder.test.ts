/** The guest build's pure parts: checksum, cpio, module order, data files, boot arguments. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { gunzipSync } from "node:zlib";
import { writeCpio } from "../../guest/builder/cpio.ts";
import {
  formatManifest,
  generateDataFile,
  manifestEntry,
  planDataFiles,
} from "../../guest/builder/data-files.ts";
import { Fnv1a64, fnv1a64Hex } from "../../guest/builder/fnv1a64.ts";
import { buildInitramfs, LOAD_ORDER_PATH } from "../../guest/builder/initramfs.ts";
import { resolveModules } from "../../guest/builder/kernel-modules.ts";
import { guestArtifacts, guestQemuArgs, kernelAppend } from "../../guest/host/artifacts.ts";
import { NotFoundError, UsageError } from "../../src/errors.ts";

const text = (s: string) => new TextEncoder().encode(s);

test("fnv1a64 matches the published test vectors, at every chunk split", () => {
  const vectors: [string, string][] = [
    ["", "cbf29ce484222325"],
    ["a", "af63dc4c8601ec8c"],
    ["foobar", "85944171f73967e8"],
  ];
  for (const [input, hex] of vectors) assert.equal(fnv1a64Hex(text(input)), hex, input);
  const bytes = generateDataFile({ name: "x", sizeBytes: 10_000, kind: "random", seed: 7 });
  const whole = fnv1a64Hex(bytes);
  for (const split of [1, 3, 4095, 4096, 9999]) {
    const h = new Fnv1a64().update(bytes.subarray(0, split)).update(bytes.subarray(split));
    assert.equal(h.hex(), whole, `split at ${split}`);
  }
});

/** Walks a newc archive: [name, mode, data] per entry, checking magic and 4-byte alignment. */
function readCpio(archive: Uint8Array): [string, number, string][] {
  const s = Buffer.from(archive).toString("latin1");
  const out: [string, number, string][] = [];
  for (let at = 0; ; ) {
    assert.equal(s.slice(at, at + 6), "070701", `magic at ${at}`);
    const field = (i: number) => Number.parseInt(s.slice(at + 6 + i * 8, at + 14 + i * 8), 16);
    const nameSize = field(11);
    const name = s.slice(at + 110, at + 110 + nameSize - 1);
    const dataAt = Math.ceil((at + 110 + nameSize) / 4) * 4;
    const data = s.slice(dataAt, dataAt + field(6));
    if (name === "TRAILER!!!") return out;
    assert.equal(field(5), 0, "mtime is fixed");
    assert.equal(field(2), 0, "owned by root");
    out.push([name, field(1), data]);
    at = Math.ceil((dataAt + field(6)) / 4) * 4;
  }
}

test("writeCpio writes sorted, aligned newc entries and is reproducible", () => {
  const entries = [
    { kind: "file", path: "init", mode: 0o755, data: text("#!/bin/sh\n") },
    { kind: "dir", path: "bin", mode: 0o755 },
    { kind: "symlink", path: "bin/sh", target: "busybox" },
    { kind: "chardev", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
  ] as const;
  const archive = writeCpio(entries);
  assert.deepEqual(archive, writeCpio([...entries].reverse()), "order of input does not matter");
  assert.deepEqual(readCpio(archive), [
    ["bin", 0o040755, ""],
    ["bin/sh", 0o120777, "busybox"],
    ["dev/console", 0o020600, ""],
    ["init", 0o100755, "#!/bin/sh\n"],
  ]);
  assert.throws(() => writeCpio([{ kind: "dir", path: "/abs", mode: 0o755 }]));
});

test("buildInitramfs lists modules in the given load order", () => {
  const modules = [
    { name: "b.ko", data: text("B") },
    { name: "a.ko", data: text("A") },
  ];
  const inputs = { init: text("init"), busybox: text("bb"), swagent: text("sw"), modules };
  const listing = readCpio(gunzipSync(buildInitramfs(inputs)));
  assert.deepEqual(listing.find(([name]) => name === LOAD_ORDER_PATH)?.[2], "b.ko\na.ko\n");
  assert.ok(listing.some(([name]) => name === "bin/swagent"));
});

const TABLES = {
  dep: [
    "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
    "kernel/fs/jbd2/jbd2.ko:",
    "kernel/fs/mbcache.ko:",
    "kernel/lib/crc16.ko:",
    "kernel/crypto/crc32c_generic.ko:",
    "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio.ko:",
  ].join("\n"),
  builtin: "kernel/drivers/tty/serial/8250/8250.ko\n",
  softdep: "softdep ext4 pre: crypto-crc32c\n",
  alias: "alias crypto-crc32c crc32c_generic\nalias pci:v* virtio_pci\n",
};

test("resolveModules puts dependencies first and skips built-ins", () => {
  const r = resolveModules(TABLES, ["crc32c_generic", "virtio-blk", "ext4", "8250"]);
  assert.deepEqual(r.loadOrder, [
    "kernel/crypto/crc32c_generic.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/lib/crc16.ko",
    "kernel/fs/mbcache.ko",
    "kernel/fs/jbd2/jbd2.ko",
    "kernel/fs/ext4/ext4.ko",
  ]);
  assert.deepEqual(r.builtin, ["8250"]);
});

test("resolveModules names the missing softdep and the unknown module", () => {
  assert.throws(
    () => resolveModules(TABLES, ["ext4"]),
    (e) => {
      assert.ok(e instanceof NotFoundError);
      assert.match(e.message, /needs "crypto-crc32c".*crc32c_generic/);
      return true;
    },
  );
  assert.throws(() => resolveModules(TABLES, ["nosuch"]), /Cannot find kernel module "nosuch"/);
});

test("data files: exact total, deterministic, not page-aligned, mixed kinds", () => {
  const params = { totalBytes: 1_000_003, fileCount: 7, seed: 42 };
  const plans = planDataFiles(params);
  assert.deepEqual(plans, planDataFiles(params));
  assert.equal(
    plans.reduce((sum, p) => sum + p.sizeBytes, 0),
    params.totalBytes,
  );
  assert.ok(plans.some((p) => p.sizeBytes % 4096 !== 0));
  assert.deepEqual(new Set(plans.map((p) => p.kind)), new Set(["text", "random", "mixed"]));
  const entries = plans.map((p) => manifestEntry(p, generateDataFile(p)));
  assert.deepEqual(
    entries,
    plans.map((p) => manifestEntry(p, generateDataFile(p))),
  );
  const lines = formatManifest(entries).split("\n");
  assert.match(lines[0] ?? "", /^# /);
  assert.match(lines[1] ?? "", /^file-00-text\.dat \d+ [0-9a-f]{16}$/);
});

test("kernelAppend passes the parameters and rejects out-of-range ones", () => {
  assert.equal(
    kernelAppend({ memMiB: 128, seed: 9, sweepMs: 2000 }),
    "console=ttyS0 snapwake.mem_mib=128 snapwake.hot_pct=5 snapwake.hot_rate=2000 snapwake.seed=9 " +
      "snapwake.sweep_ms=2000",
  );
  const bads = [
    { memMiB: 0 },
    { hotPct: 101 },
    { hotRate: -1 },
    { seed: 1.5 },
    { sweepMs: 60_001 },
  ];
  for (const bad of bads) assert.throws(() => kernelAppend(bad), UsageError, JSON.stringify(bad));
});

test("guestQemuArgs wires ttyS0, ttyS1 and the data disk", () => {
  const artifacts = guestArtifacts("/g");
  const args = guestQemuArgs({ agentSocket: "/s.sock", consoleLog: "/c.log", artifacts });
  assert.deepEqual(args.slice(0, 4), ["-kernel", "/g/vmlinux", "-initrd", "/g/initrd.img"]);
  assert.deepEqual(args.slice(6), [
    "-serial",
    "file:/c.log",
    "-serial",
    "unix:/s.sock,server=on,wait=off",
    "-drive",
    "file=/g/data.img,if=virtio,format=raw,readonly=on",
  ]);
  assert.throws(
    () => guestQemuArgs({ agentSocket: "/a,b", consoleLog: "/c", artifacts }),
    UsageError,
  );
});
