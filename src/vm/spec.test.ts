import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { NotFoundError, UsageError } from "../errors.ts";
import { loadVmSpec, parseVmSpec } from "./spec.ts";

const BASE = { baseDir: "/specs" };
const MINIMAL = { name: "web-1", memoryMiB: 64 };

test("a minimal spec gets every default", () => {
  assert.deepEqual(parseVmSpec(MINIMAL, BASE), {
    name: "web-1",
    machine: "pc",
    accel: "tcg",
    smp: 1,
    memoryMiB: 64,
    disks: [],
    agent: true,
    extraArgs: [],
  });
});

test("relative paths resolve against the spec's folder, absolute ones stay", () => {
  const spec = parseVmSpec(
    {
      ...MINIMAL,
      kernel: "guest/vmlinuz",
      initrd: "/boot/initrd.img",
      append: "console=ttyS0",
      disks: [{ path: "../disks/data.qcow2", format: "qcow2", readonly: true }],
    },
    BASE,
  );
  assert.equal(spec.kernel, "/specs/guest/vmlinuz");
  assert.equal(spec.initrd, "/boot/initrd.img");
  assert.deepEqual(spec.disks, [
    { path: "/disks/data.qcow2", format: "qcow2", readonly: true, interface: "virtio" },
  ]);
});

test("a parsed spec parses to itself (checkpoints record it)", () => {
  const spec = parseVmSpec(
    { ...MINIMAL, cpu: "max", kernel: "k", disks: [{ path: "d", format: "raw" }] },
    BASE,
  );
  assert.deepEqual(parseVmSpec(JSON.parse(JSON.stringify(spec)), { baseDir: "/elsewhere" }), spec);
});

const BAD: [string, Record<string, unknown>, RegExp][] = [
  [
    "memoryMiB as text",
    { memoryMiB: "abc" },
    /spec\.memoryMiB: expected an integer 16\.\.1048576, got "abc"/,
  ],
  [
    "memoryMiB missing",
    { memoryMiB: undefined },
    /spec\.memoryMiB: expected an integer .*, got nothing/,
  ],
  ["memoryMiB too small", { memoryMiB: 8 }, /spec\.memoryMiB: .*got 8/],
  ["memoryMiB fractional", { memoryMiB: 64.5 }, /spec\.memoryMiB/],
  ["name with a slash", { name: "a/b" }, /spec\.name: expected a string matching .*, got "a\/b"/],
  ["name too long", { name: "x".repeat(65) }, /spec\.name/],
  ["accel", { accel: "hvf" }, /spec\.accel: expected "tcg" or "kvm", got "hvf"/],
  ["machine with options", { machine: "pc,usb=on" }, /spec\.machine/],
  ["cpu host under tcg", { cpu: "host" }, /spec\.cpu: "host" needs accel "kvm"/],
  ["smp zero", { smp: 0 }, /spec\.smp: expected an integer 1\.\.255, got 0/],
  [
    "initrd without kernel",
    { initrd: "i" },
    /spec\.kernel: required when spec\.initrd or spec\.append/,
  ],
  ["append without kernel", { append: "quiet" }, /spec\.kernel: required/],
  ["kernel empty", { kernel: "" }, /spec\.kernel: expected a file path, got ""/],
  ["disks not a list", { disks: {} }, /spec\.disks: expected an array/],
  [
    "disk format",
    { disks: [{ path: "d", format: "vmdk" }] },
    /spec\.disks\[0\]\.format: expected "raw" or "qcow2"/,
  ],
  [
    "disk path",
    { disks: [{ format: "raw" }] },
    /spec\.disks\[0\]\.path: expected a file path, got nothing/,
  ],
  [
    "disk readonly",
    { disks: [{ path: "d", format: "raw", readonly: "yes" }] },
    /spec\.disks\[0\]\.readonly/,
  ],
  [
    "disk interface",
    { disks: [{ path: "d", format: "raw", interface: "ide" }] },
    /disks\[0\]\.interface/,
  ],
  [
    "disk unknown field",
    { disks: [{ path: "d", format: "raw", cache: "none" }] },
    /disks\[0\]\.cache: unknown/,
  ],
  ["agent", { agent: "on" }, /spec\.agent: expected true or false, got "on"/],
  ["extraArgs item", { extraArgs: ["-s", 1] }, /spec\.extraArgs\[1\]: expected a string, got 1/],
  ["unknown field", { memoryMib: 64 }, /spec\.memoryMib: unknown field/],
];

for (const [what, change, message] of BAD) {
  test(`bad spec: ${what}`, () => {
    assert.throws(
      () => parseVmSpec({ ...MINIMAL, ...change }, BASE),
      (error: Error) => {
        assert.ok(error instanceof UsageError);
        assert.match(error.message, message);
        return true;
      },
    );
  });
}

test("every problem is reported at once", () => {
  assert.throws(
    () => parseVmSpec({ name: "", memoryMiB: "x", accel: 1 }, BASE),
    /spec\.name.*\n.*spec\.accel.*\n.*spec\.memoryMiB/,
  );
});

test("a spec that is not an object is refused", () => {
  assert.throws(() => parseVmSpec([], BASE), /spec: expected a JSON object, got \[\]/);
});

test("loadVmSpec resolves paths against the file and names the file in errors", async () => {
  const dir = await mkdtemp(join(tmpdir(), "snapwake-spec-"));
  try {
    const path = join(dir, "guest.json");
    await writeFile(path, JSON.stringify({ ...MINIMAL, kernel: "vmlinuz" }));
    assert.equal((await loadVmSpec(path)).kernel, join(dir, "vmlinuz"));
    await writeFile(path, "{ nope");
    await assert.rejects(loadVmSpec(path), /guest\.json is not valid JSON/);
    await writeFile(path, JSON.stringify({ name: "x" }));
    await assert.rejects(loadVmSpec(path), /guest\.json: Invalid VM spec:\n {2}spec\.memoryMiB/);
    await assert.rejects(loadVmSpec(join(dir, "missing.json")), NotFoundError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the qemu field: binary on PATH or made absolute, data and module dirs absolute", () => {
  const spec = parseVmSpec(
    {
      ...MINIMAL,
      qemu: { binary: "q/bin/qemu-system-x86_64", dataDirs: ["q/share", "/usr/share/seabios"] },
    },
    BASE,
  );
  assert.deepEqual(spec.qemu, {
    binary: "/specs/q/bin/qemu-system-x86_64",
    dataDirs: ["/specs/q/share", "/usr/share/seabios"],
  });
  assert.deepEqual(parseVmSpec(JSON.parse(JSON.stringify(spec)), { baseDir: "/x" }), spec);
  const onPath = parseVmSpec(
    { ...MINIMAL, qemu: { binary: "qemu-system-x86_64", moduleDir: "m" } },
    BASE,
  );
  assert.deepEqual(onPath.qemu, {
    binary: "qemu-system-x86_64",
    dataDirs: [],
    moduleDir: "/specs/m",
  });
  assert.throws(
    () => parseVmSpec({ ...MINIMAL, qemu: { binary: "", extra: 1 } }, BASE),
    /spec\.qemu\.extra: unknown field[\s\S]*spec\.qemu\.binary: expected a string/,
  );
});
