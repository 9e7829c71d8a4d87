import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../errors.ts";
import { qemuCommand, resolveQemuChoice, SYSTEM_QEMU, unpackedQemu } from "./qemu-install.ts";

test("7.2 is the system QEMU; 10.0 is the unpacked one, or a UsageError saying to run setup", () => {
  assert.deepEqual(resolveQemuChoice("7.2", "/nowhere"), SYSTEM_QEMU);
  assert.throws(
    () => resolveQemuChoice("10.0", "/nowhere"),
    (e: unknown) => e instanceof UsageError && /npm run setup/.test(e.message),
  );
  assert.throws(
    () => resolveQemuChoice("qemu9", "/nowhere"),
    (e: unknown) => e instanceof UsageError && /10\.0 or 7\.2 or an absolute path/.test(e.message),
  );
});

test("an unpacked QEMU: its data dir, then SeaBIOS; run through env(1) with its module dir", () => {
  const q = unpackedQemu("/b/qemu-10.0");
  assert.equal(q.binary, "/b/qemu-10.0/usr/bin/qemu-system-x86_64");
  assert.deepEqual(q.dataDirs, ["/b/qemu-10.0/usr/share/qemu", "/usr/share/seabios"]);
  assert.deepEqual(qemuCommand(q, q.binary, ["-S"]), [
    "env",
    ["QEMU_MODULE_DIR=/b/qemu-10.0/usr/lib/x86_64-linux-gnu/qemu", q.binary, "-S"],
  ]);
  assert.deepEqual(qemuCommand(SYSTEM_QEMU, "qemu-system-x86_64", ["-S"]), [
    "qemu-system-x86_64",
    ["-S"],
  ]);
});
