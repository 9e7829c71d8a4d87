import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { UsageError } from "../errors.ts";
import {
  hostCodename,
  qemuCommand,
  qemuSourcesFor,
  resolveQemuChoice,
  SYSTEM_QEMU,
  unpackedQemu,
} from "./qemu-install.ts";

test("Debian 12: 7.2 is the system QEMU; 10.0 the unpacked one, or a UsageError to run setup", () => {
  for (const codename of ["bookworm", "", "jammy"]) {
    assert.deepEqual(resolveQemuChoice("7.2", "/nowhere", codename), SYSTEM_QEMU);
    assert.throws(
      () => resolveQemuChoice("10.0", "/nowhere", codename),
      (e: unknown) => e instanceof UsageError && /npm run setup/.test(e.message),
    );
  }
  assert.throws(
    () => resolveQemuChoice("qemu9", "/nowhere", "bookworm"),
    (e: unknown) => e instanceof UsageError && /10\.0 or 7\.2 or an absolute path/.test(e.message),
  );
});

test("Debian 13: 10.0 is the system QEMU; 7.2 names none and says how to give one", () => {
  assert.deepEqual(resolveQemuChoice("10.0", "/nowhere", "trixie"), SYSTEM_QEMU);
  assert.throws(
    () => resolveQemuChoice("7.2", "/nowhere", "trixie"),
    (e: unknown) =>
      e instanceof UsageError &&
      /no QEMU 7\.2: its system QEMU is 10\.0.*SNAPWAKE_QEMU/.test(e.message),
  );
});

test("the release decides where setup gets QEMU 10.0; an unknown release has no plan", () => {
  assert.deepEqual(qemuSourcesFor("bookworm"), { reference: "backports", system: "7.2" });
  assert.deepEqual(qemuSourcesFor("trixie"), { reference: "system", system: "10.0" });
  assert.equal(qemuSourcesFor("jammy"), null);
  assert.equal(qemuSourcesFor(""), null);
});

test("the host codename is os-release's VERSION_CODENAME, quoted or not; none is empty", async () => {
  const dir = await mkdtemp(join(tmpdir(), "snapwake-os-"));
  try {
    const file = join(dir, "os-release");
    await writeFile(file, 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\n');
    assert.equal(hostCodename(file), "trixie");
    await writeFile(file, 'ID=debian\nVERSION_CODENAME="bookworm"\n');
    assert.equal(hostCodename(file), "bookworm");
    await writeFile(file, "ID=debian\n");
    assert.equal(hostCodename(file), "");
    assert.equal(hostCodename(join(dir, "absent")), "");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
