import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { test } from "node:test";
import { CheckpointStore } from "../checkpoint/index.ts";
import { QemuError } from "../errors.ts";
import { withSmallTmpfs } from "../test-support.ts";
import { explainSpoolFailure, shellQuote, spoolPath, spoolUri } from "./spool.ts";

test("the spool URI: file: from QEMU 8.2, else cat; sh gets every byte of the path back", () => {
  for (const s of ["plain", "with space", "it's", "''", "$HOME `x` \\n", "a\nb", "-n", ""]) {
    const out = execFileSync("sh", ["-c", `printf %s ${shellQuote(s)}`], { encoding: "utf8" });
    assert.equal(out, s);
  }
  const v72 = { major: 7, minor: 2, micro: 0 };
  const v100 = { major: 10, minor: 0, micro: 2 };
  assert.equal(spoolUri("/h/tmp/1-ab.stream", v72), "exec:cat > '/h/tmp/1-ab.stream'");
  assert.equal(
    spoolUri("/h/tmp/1-ab.stream", { ...v72, major: 8, minor: 1 }),
    "exec:cat > '/h/tmp/1-ab.stream'",
  );
  assert.equal(spoolUri("/h/tmp/1-ab.stream", { ...v72, major: 8 }), "file:/h/tmp/1-ab.stream");
  assert.equal(spoolUri("/h/tmp/1-ab.stream", v100), "file:/h/tmp/1-ab.stream");
  assert.equal(spoolUri("/h,o/tmp/1-ab.stream", v100), "exec:cat > '/h,o/tmp/1-ab.stream'");
});

test("a spool path is a temp entry of this process, given only when the disk has room", async () => {
  const home = await mkdtemp(join(tmpdir(), "snapwake-spool-"));
  try {
    const store = new CheckpointStore({ home });
    const path = await spoolPath(store, 2 ** 20);
    assert.ok(path !== null, "a 1 MiB guest's stream fits");
    assert.equal(dirname(path), store.tempDir);
    assert.match(basename(path), new RegExp(`^${process.pid}-[0-9a-f]{16}\\.stream$`));
    assert.equal(await spoolPath(store, 2 ** 50), null, "a 1 PiB guest's stream does not");
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

test("a spool that failed on a full disk says so; other failures pass as they are", async (t) => {
  await withSmallTmpfs(t, 8, async (home) => {
    const spool = join(home, "1-0123456789abcdef.stream");
    const failed = new QemuError("Migration failed: Unable to write to command");
    const roomy = await explainSpoolFailure(failed, join(tmpdir(), "x.stream"));
    assert.equal(roomy, failed, "with room left, QEMU's own reason stands");
    await assert.rejects(writeFile(spool, Buffer.alloc(16 * 2 ** 20)), /ENOSPC/);
    const full = await explainSpoolFailure(failed, spool);
    assert.ok(full instanceof QemuError);
    assert.match(full.message, /the disk is full \(0 MiB left\).*nothing was listed/);
    assert.equal(full.cause, failed);
    const other = new Error("not QEMU's");
    assert.equal(await explainSpoolFailure(other, spool), other);
  });
});
