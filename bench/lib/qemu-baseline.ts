/**
 * QEMU's own save and restore, measured the same way as snapwake's so the two can stand side
 * by side: `migrate "file:FILE"` (`exec:cat > FILE` before QEMU 8.2) and `-incoming defer` +
 * `migrate-incoming "exec:cat FILE"` (as fast as `file:` for loading, measured 2026-12-07).
 */
import { execFileSync } from "node:child_process";
import { stat } from "node:fs/promises";
import { spoolUri } from "../../src/save/spool.ts";
import type { ManagedVm, VmSpec } from "../../src/vm/index.ts";
import { startVm } from "../../src/vm/index.ts";

export interface QemuSave {
  readonly file: string;
  readonly streamBytes: number;
  /** The stream file through the zstd CLI at level 1 (`zstd -1`). */
  readonly zstdBytes: number;
  /** migrate command → completed. */
  readonly saveMs: number;
  /** The zstd -1 pass over the file, after the save. */
  readonly zstdMs: number;
}

/**
 * QEMU's own migrate of the VM to `file`, paused first with `stopFirst` (counted in the time);
 * returns ms to `completed` and leaves the guest in postmigrate (the caller `cont`s it). The
 * URI is the one snapwake's spool takes: `file:` from QEMU 8.2 (twice as fast as `cat` here).
 */
export async function qemuMigrateToFile(
  vm: ManagedVm,
  file: string,
  stopFirst: boolean,
): Promise<number> {
  await vm.qmp.execute("migrate-set-parameters", { "max-bandwidth": 1_000_000_000_000 });
  const version = await vm.qmp.execute("query-version", {});
  const started = performance.now();
  if (stopFirst) await vm.qmp.execute("stop", {});
  await vm.qmp.execute("migrate", { uri: spoolUri(file, version.qemu) });
  await vm.qmp.waitForMigration(); // failed or cancelled throws
  return performance.now() - started;
}

/** Saves the running VM with QEMU's own migrate to a file; the VM is resumed afterwards. */
export async function qemuSave(vm: ManagedVm, file: string): Promise<QemuSave> {
  const saveMs = await qemuMigrateToFile(vm, file, false);
  await vm.qmp.execute("cont", {});
  const streamBytes = (await stat(file)).size;
  const zstdStarted = performance.now();
  const zstdBytes = Number(
    execFileSync("sh", ["-c", `zstd -1 -q -c '${file}' | wc -c`])
      .toString()
      .trim(),
  );
  const zstdMs = performance.now() - zstdStarted;
  return { file, streamBytes, zstdBytes, saveMs, zstdMs };
}

/** Restores with QEMU's own incoming migration from the file; returns the started VM. */
export async function qemuRestore(
  home: string,
  spec: VmSpec,
  file: string,
): Promise<{ vm: ManagedVm; restoreMs: number }> {
  const started = performance.now();
  const vm = await startVm(home, spec, { incoming: "defer" });
  await vm.qmp.execute("migrate-incoming", { uri: `exec:cat ${file}` });
  await vm.qmp.waitForMigration(); // failed or cancelled throws
  return { vm, restoreMs: performance.now() - started };
}
