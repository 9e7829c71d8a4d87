import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../errors.ts";
import { buildQemuArgs, QEMU_BINARY_DEFAULT, resolveQemuBinary } from "./command-line.ts";
import { parseVmSpec } from "./spec.ts";

const FULL = parseVmSpec(
  {
    name: "web-1",
    cpu: "max",
    smp: 2,
    memoryMiB: 256,
    kernel: "vmlinuz",
    initrd: "initrd.img",
    append: "console=ttyS0 quiet",
    disks: [
      { path: "root,1.qcow2", format: "qcow2" },
      { path: "/data/seed.img", format: "raw", readonly: true },
    ],
    extraArgs: ["-device", "virtio-balloon-pci"],
  },
  { baseDir: "/guests" },
);

test("a full spec gives the golden argv", () => {
  const args = buildQemuArgs(FULL, { stateDir: "/h/vms/web-1", incoming: "defer", paused: true });
  assert.deepEqual(args, [
    ...["-name", "web-1", "-machine", "pc,accel=tcg", "-m", "256M", "-smp", "2", "-cpu", "max"],
    ...["-nodefaults", "-no-user-config", "-display", "none"],
    ...[
      "-kernel",
      "/guests/vmlinuz",
      "-initrd",
      "/guests/initrd.img",
      "-append",
      "console=ttyS0 quiet",
    ],
    ...["-serial", "file:/h/vms/web-1/console.log"],
    ...["-serial", "unix:/h/vms/web-1/agent.sock,server=on,wait=off"],
    ...["-drive", "file=/guests/root,,1.qcow2,if=virtio,format=qcow2,readonly=off"],
    ...["-drive", "file=/data/seed.img,if=virtio,format=raw,readonly=on"],
    ...["-qmp", "unix:/h/vms/web-1/qmp.sock,server=on,wait=off"],
    ...["-pidfile", "/h/vms/web-1/qemu.pid"],
    ...["-incoming", "defer", "-S"],
    ...["-device", "virtio-balloon-pci"],
  ]);
});

test("a minimal spec without agent, paused or incoming", () => {
  const spec = parseVmSpec(
    { name: "a", memoryMiB: 64, agent: false, accel: "kvm" },
    { baseDir: "/" },
  );
  assert.deepEqual(buildQemuArgs(spec, { stateDir: "/s" }), [
    ...["-name", "a", "-machine", "pc,accel=kvm", "-m", "64M", "-smp", "1"],
    ...["-nodefaults", "-no-user-config", "-display", "none"],
    ...["-serial", "file:/s/console.log", "-qmp", "unix:/s/qmp.sock,server=on,wait=off"],
    ...["-pidfile", "/s/qemu.pid"],
  ]);
});

test("free page reporting adds the balloon device; the spec records it only when on", () => {
  const on = parseVmSpec({ name: "b", memoryMiB: 64, freePageReporting: true }, { baseDir: "/" });
  assert.equal(on.freePageReporting, true);
  const args = buildQemuArgs(on, { stateDir: "/s" });
  const at = args.indexOf("virtio-balloon-pci,id=balloon0,free-page-reporting=on");
  assert.equal(args[at - 1], "-device");
  const off = parseVmSpec({ name: "b", memoryMiB: 64 }, { baseDir: "/" });
  assert.equal("freePageReporting" in off, false, "an old spec parses to itself");
  assert.ok(!buildQemuArgs(off, { stateDir: "/s" }).some((a) => a.includes("balloon")));
  assert.throws(
    () => parseVmSpec({ name: "b", memoryMiB: 64, freePageReporting: "yes" }, { baseDir: "/" }),
    /spec\.freePageReporting: expected/,
  );
});

test("the same spec gives the same argv; only state-dir paths differ", () => {
  const a = buildQemuArgs(FULL, { stateDir: "/one" });
  const b = buildQemuArgs(FULL, { stateDir: "/two" });
  assert.deepEqual(
    b,
    a.map((arg) => arg.replaceAll("/one/", "/two/")),
  );
  assert.deepEqual(buildQemuArgs(FULL, { stateDir: "/one" }), a);
});

test("commas in the state dir are doubled where QEMU parses options", () => {
  const args = buildQemuArgs(FULL, { stateDir: "/a,b" });
  assert.ok(args.includes("unix:/a,,b/qmp.sock,server=on,wait=off"));
  assert.ok(args.includes("file:/a,b/console.log"), "file: takes the rest verbatim");
  assert.ok(args.includes("/a,b/qemu.pid"));
});

test("a state dir too deep for a Unix socket path is refused with a way out", () => {
  const deep = `/${"d".repeat(100)}`;
  assert.throws(
    () => buildQemuArgs(FULL, { stateDir: deep }),
    (error: Error) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /agent\.sock is 112 bytes; Unix sockets allow at most 107/);
      assert.match(error.message, /shorter snapwake home/);
      return true;
    },
  );
  const noAgent = { ...FULL, agent: false };
  assert.throws(() => buildQemuArgs(noAgent, { stateDir: deep }), /qmp\.sock is 110 bytes/);
});

test("a relative state dir is a bug in the caller", () => {
  assert.throws(() => buildQemuArgs(FULL, { stateDir: "vms/x" }), /expected an absolute path/);
});

test("the QEMU binary defaults to qemu-system-x86_64 and can be overridden", () => {
  assert.equal(resolveQemuBinary(), QEMU_BINARY_DEFAULT);
  assert.equal(QEMU_BINARY_DEFAULT, "qemu-system-x86_64");
  assert.equal(
    resolveQemuBinary({ qemuBinary: "/opt/qemu/bin/qemu-system-x86_64" }),
    "/opt/qemu/bin/qemu-system-x86_64",
  );
});

test("the VM's QEMU data dirs become -L options; a runtime's QEMU overrides the spec's", () => {
  const spec = parseVmSpec(
    { name: "v", memoryMiB: 64, qemu: { binary: "/q/qemu", dataDirs: ["/q/share", "/bios"] } },
    { baseDir: "/" },
  );
  const args = buildQemuArgs(spec, { stateDir: "/h/vms/v" });
  assert.deepEqual(args.slice(0, 6), ["-name", "v", "-L", "/q/share", "-L", "/bios"]);
  const system = buildQemuArgs(spec, {
    stateDir: "/h/vms/v",
    qemu: { binary: "qemu-system-x86_64", dataDirs: [] },
  });
  assert.deepEqual(system.slice(0, 4), ["-name", "v", "-machine", "pc,accel=tcg"]);
});

test("a RAM file maps the machine's RAM block from it, private, right after -m", () => {
  const ramFile = { id: "pc.ram", path: "/h/cache/ram/a,b/image", sizeBytes: 256 * 2 ** 20 };
  const args = buildQemuArgs(FULL, { stateDir: "/h/vms/web-1", ramFile });
  const at = args.indexOf("-m");
  assert.deepEqual(args.slice(at, at + 8), [
    ...["-m", "256M", "-smp", "2"],
    ...[
      "-object",
      "memory-backend-file,id=pc.ram,size=268435456,mem-path=/h/cache/ram/a,,b/image,share=off",
    ],
    ...["-machine", "memory-backend=pc.ram"],
  ]);
  assert.ok(!buildQemuArgs(FULL, { stateDir: "/h/vms/web-1" }).includes("-object"));
});

test("a RAM memfd is QEMU's own, shared so that what a restore writes there is the guest's", () => {
  const sharedRam = { id: "pc.ram", sizeBytes: 256 * 2 ** 20 };
  const args = buildQemuArgs(FULL, { stateDir: "/h/vms/web-1", sharedRam });
  const at = args.indexOf("-object");
  assert.deepEqual(args.slice(at, at + 4), [
    ...["-object", "memory-backend-memfd,id=pc.ram,size=268435456,share=on"],
    ...["-machine", "memory-backend=pc.ram"],
  ]);
});

test("shared RAM in a directory is a file QEMU makes there, shared, for a huge-page tmpfs", () => {
  const sharedRam = { id: "pc.ram", sizeBytes: 256 * 2 ** 20, dir: "/run/ram,x" };
  const args = buildQemuArgs(FULL, { stateDir: "/h/vms/web-1", sharedRam });
  const at = args.indexOf("-object");
  assert.deepEqual(args.slice(at, at + 4), [
    ...[
      "-object",
      "memory-backend-file,id=pc.ram,size=268435456,share=on,mem-path=/run/ram,,x,align=2097152",
    ],
    ...["-machine", "memory-backend=pc.ram"],
  ]);
});
