/**
 * `npm run demo`: boots the test guest, checkpoints it with snapwake (and with QEMU's own
 * migrate, for comparison), restores it (QEMU's own; snapwake eager, lazy, mapped twice), has
 * the guest verify every page, saves the restored guest again (incremental), and prints the
 * comparison table. A smaller guest than the bench so it finishes in about two minutes (each
 * restore waits 10 s for host memory to settle, as the bench's do: ADR 0025).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killVm, listVms } from "../src/vm/index.ts";
import { formatComparison, runComparison } from "./lib/compare.ts";

const work = await mkdtemp(join(tmpdir(), "snapwake-demo-"));
try {
  const result = await runComparison({
    home: join(work, "home"),
    workDir: work,
    memoryMiB: 512,
    memMiB: 192,
    log: (line) => console.error(`demo: ${line}`),
  });
  const steps = "save → kill → eager, lazy and mapped restores → guest verifies → save again";
  console.log(`\nsnapwake demo: ${steps}\n\n${formatComparison(result)}\n`);
  const { lazyVerifyBad, mappedVerifyBad } = result.snapwake;
  const bad = result.verify.bad + result.verify.filesBad + lazyVerifyBad + mappedVerifyBad;
  if (bad !== 0) {
    console.error("demo: the restored guest found bad pages or files");
    process.exitCode = 1;
  }
} finally {
  const home = join(work, "home");
  for (const vm of await listVms(home).catch(() => [])) await killVm(home, vm.name);
  await rm(work, { recursive: true, force: true });
}
