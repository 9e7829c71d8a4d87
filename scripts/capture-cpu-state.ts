/**
 * Captures the device state of the project's own test guest (Debian's kernel in long mode,
 * TCG, 256 MiB) saved paused, into test/fixtures/qemu-<version>/linux-guest.{sections.bin,
 * vmdesc}: the FULL sections up to EOF and the VMDESCRIPTION JSON, verbatim. With a vCPU count
 * above 1 (second argument) the guest runs with `-smp N` and the files are
 * linux-guest-smpN.{sections.bin,vmdesc}. The vCPU parser's tests
 * (src/qemu/migration/cpu-state.test.ts) read them. Run under the QEMU lock:
 *   flock /tmp/snapwake-qemu.lock node scripts/capture-cpu-state.ts 10.0
 *   flock /tmp/snapwake-qemu.lock node scripts/capture-cpu-state.ts 7.2 2
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointReader, CheckpointStore } from "../src/checkpoint/index.ts";
import { vcpuPagingStates } from "../src/qemu/migration/cpu-state.ts";
import { save } from "../src/save/index.ts";
import { killVm, resolveQemuChoice } from "../src/vm/index.ts";
import { bootTestGuest } from "../test/support/test-guest.ts";

const version = process.argv[2] ?? "10.0";
const smp = Number(process.argv[3] ?? "1");
if (!Number.isSafeInteger(smp) || smp < 1) throw new Error(`not a vCPU count: ${process.argv[3]}`);
const base = smp === 1 ? "linux-guest" : `linux-guest-smp${smp}`;
const qemu = resolveQemuChoice(version, join(import.meta.dirname, "..", "build"));
const home = await mkdtemp(join(tmpdir(), "snapwake-cpu-capture-"));
try {
  const { vm, agent } = await bootTestGuest(home, {
    name: "cpu",
    memoryMiB: 256,
    params: { memMiB: 16, hotPct: 5, hotRate: 200 },
    qemu,
    smp,
  });
  agent.close();
  vm.qmp.close(); // QEMU serves one QMP client at a time: the save opens its own
  await save({ home, vm: "cpu", name: "cpu@1", live: false, after: "stop", accessedBits: false });
  await killVm(home, "cpu").catch(() => undefined);
  const reader = await CheckpointReader.open(new CheckpointStore({ home }), "cpu@1");
  const device = await reader.deviceState();
  await reader.close();
  if (device.vmdescription === null) throw new Error("the stream had no VMDESCRIPTION");
  const out = join(import.meta.dirname, "..", "test", "fixtures", `qemu-${version}`);
  await writeFile(join(out, `${base}.sections.bin`), device.sections);
  await writeFile(join(out, `${base}.vmdesc`), device.vmdescription);
  const cpus = vcpuPagingStates(device.sections, device.vmdescription);
  const hex = (v: bigint) => `0x${v.toString(16)}`;
  for (const c of cpus)
    console.log(
      `vCPU ${c.index}: CR0 ${hex(c.cr0)} CR3 ${hex(c.cr3)} CR4 ${hex(c.cr4)} EFER ${hex(c.efer)}`,
    );
} finally {
  await rm(home, { recursive: true, force: true });
}
