import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { UnsupportedStreamError } from "../../errors.ts";
import { vcpuPagingStates } from "./cpu-state.ts";
import { readMigrationStream } from "./stream-reader.ts";
import { chunked, fixture, MemoryVisitor } from "./test-support.ts";

async function deviceStateOf(name: string) {
  const visitor = new MemoryVisitor();
  await readMigrationStream(chunked(fixture(name), 65536), visitor);
  const state = visitor.device;
  assert.ok(state !== null, "the fixture has a device state");
  return state;
}

test("the 7.2 fixture's vCPU paging registers are read from its described section", async () => {
  const state = await deviceStateOf("pc.mig");
  const [cpu, ...others] = vcpuPagingStates(state.sections, state.vmdescription);
  assert.equal(others.length, 0, "the fixture's VM has one vCPU");
  assert.ok(cpu !== undefined);
  assert.equal(cpu.index, 0);
  // The fixture's guest was saved at reset: CR0 holds only ET, no paging, no long mode.
  assert.deepEqual(cpu, { index: 0, cr0: 0x10n, cr3: 0n, cr4: 0n, efer: 0n });
});

/** The device state of the project's test guest saved paused on that QEMU (fixture READMEs). */
function linuxGuest(qemu: "7.2" | "10.0", base = "linux-guest") {
  const dir = join(import.meta.dirname, "..", "..", "..", "test", "fixtures", `qemu-${qemu}`);
  return {
    sections: readFileSync(join(dir, `${base}.sections.bin`)),
    vmdesc: readFileSync(join(dir, `${base}.vmdesc`)),
  };
}

test("a Linux guest's vCPU is in 4-level long-mode paging with its CR3 (QEMU 7.2)", () => {
  const { sections, vmdesc } = linuxGuest("7.2");
  assert.deepEqual(vcpuPagingStates(sections, vmdesc), [
    { index: 0, cr0: 0x80050033n, cr3: 0x6352000n, cr4: 0x6f0n, efer: 0xd01n },
  ]);
});

test("the same guest's vCPU read from QEMU 10.0's device state", () => {
  const { sections, vmdesc } = linuxGuest("10.0");
  assert.deepEqual(vcpuPagingStates(sections, vmdesc), [
    { index: 0, cr0: 0x80050033n, cr3: 0x61fc000n, cr4: 0x6f0n, efer: 0xd01n },
  ]);
  // 10.0 saves the devices in another order and describes more (a configuration entry,
  // globalstate fields); the cpu device (vmstate version 12) is described alike in both.
  const describe = (bytes: Buffer) =>
    JSON.parse(bytes.toString("utf8")) as { devices: { name: string; version: number }[] };
  const [old, now] = [describe(linuxGuest("7.2").vmdesc), describe(vmdesc)];
  assert.notDeepEqual(
    old.devices.map((d) => d.name),
    now.devices.map((d) => d.name),
  );
  const cpuOf = (d: typeof old) => d.devices.find((x) => x.name === "cpu");
  assert.deepEqual(cpuOf(old), cpuOf(now));
  assert.equal(cpuOf(now)?.version, 12);
});

test("a device state without a description, or whose description disagrees, is refused", async () => {
  const state = await deviceStateOf("pc.mig");
  assert.throws(() => vcpuPagingStates(state.sections, null), UnsupportedStreamError);
  const desc = JSON.parse(Buffer.from(state.vmdescription ?? new Uint8Array()).toString("utf8"));
  const cpu = desc.devices.find((d: { name: string }) => d.name === "cpu");
  cpu.fields[0].size += 1; // the body no longer ends at the footer
  const wrong = Buffer.from(JSON.stringify(desc));
  assert.throws(() => vcpuPagingStates(state.sections, wrong), /description and the sections/);
  cpu.fields[0].size -= 1;
  cpu.fields = cpu.fields.filter((f: { name: string }) => f.name !== "env.cr[3]");
  cpu.fields.push({ name: "pad", type: "uint64", size: 8 }); // same body size, no CR3
  assert.throws(
    () => vcpuPagingStates(state.sections, Buffer.from(JSON.stringify(desc))),
    /no 8-byte field "env.cr\[3\]"/,
  );
  assert.throws(() => vcpuPagingStates(state.sections, Buffer.from("{]")), /not JSON/);
  const noCpu = { devices: desc.devices.filter((d: { name: string }) => d.name !== "cpu") };
  assert.throws(
    () => vcpuPagingStates(state.sections, Buffer.from(JSON.stringify(noCpu))),
    /no "cpu" device/,
  );
});

// The same guest booted with -smp 2 (linux-guest-smp2.*, fixture READMEs): one "cpu" section
// per vCPU, each with its own registers.
const SMP2_RAM_BYTES = 256n * 2n ** 20n;
const CR0_PE = 1n << 0n;
const CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const CR4_PCIDE = 1n << 17n;
const EFER_LME = 1n << 8n;
const EFER_LMA = 1n << 10n;

/**
 * What scripts/capture-cpu-state.ts printed. Both vCPUs idle in the same address space (one
 * CR3); only the boot vCPU has CR4.PSE (0x10), which long mode ignores.
 */
const SMP2_CAPTURED = {
  "7.2": [
    { index: 0, cr0: 0x80050033n, cr3: 0x633a000n, cr4: 0x6f0n, efer: 0xd01n },
    { index: 1, cr0: 0x80050033n, cr3: 0x633a000n, cr4: 0x6e0n, efer: 0xd01n },
  ],
  "10.0": [
    { index: 0, cr0: 0x80050033n, cr3: 0x5f9c000n, cr4: 0x6f0n, efer: 0xd01n },
    { index: 1, cr0: 0x80050033n, cr3: 0x5f9c000n, cr4: 0x6e0n, efer: 0xd01n },
  ],
};

for (const qemu of ["7.2", "10.0"] as const) {
  test(`both vCPUs of a 2-vCPU guest are read, each in long mode (QEMU ${qemu})`, () => {
    const { sections, vmdesc } = linuxGuest(qemu, "linux-guest-smp2");
    const cpus = vcpuPagingStates(sections, vmdesc);
    assert.deepEqual(
      cpus.map((c) => c.index),
      [0, 1],
    );
    for (const c of cpus) {
      const at = `vCPU ${c.index}`;
      assert.equal(c.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG, `${at}: CR0.PE and CR0.PG`);
      assert.equal(c.cr4 & CR4_PAE, CR4_PAE, `${at}: CR4.PAE`);
      assert.equal(c.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA, `${at}: EFER.LMA`);
      assert.equal(c.cr4 & CR4_PCIDE, 0n, `${at}: no PCID, so CR3's low 12 bits are flags`);
      assert.equal(c.cr3 & 0xfffn, 0n, `${at}: CR3 is page-aligned`);
      assert.ok(c.cr3 > 0n && c.cr3 < SMP2_RAM_BYTES, `${at}: CR3 inside the 256 MiB of RAM`);
    }
    assert.deepEqual(cpus, SMP2_CAPTURED[qemu], "the registers the capture printed (README)");
  });
}

/** vCPU 1's FULL section header in `sections`: `04 be32(id) 03 "cpu" be32(1) be32(version)`. */
function secondCpuHeaderAt(sections: Buffer): number {
  const needle = Buffer.concat([Buffer.of(3), Buffer.from("cpu"), Buffer.of(0, 0, 0, 1)]);
  const at = sections.indexOf(needle) - 5;
  assert.ok(at >= 0 && sections[at] === 0x04, "vCPU 1's section header is in the fixture");
  return at;
}

test("a 2-vCPU device state whose second cpu section is cut short is refused", () => {
  const { sections, vmdesc } = linuxGuest("10.0", "linux-guest-smp2");
  const header = secondCpuHeaderAt(sections);
  const body = header + 17;
  const refusal = /Cannot find vCPU 1's section .* the description and the sections disagree/;
  // 8 bytes gone from the middle of vCPU 1's body: its footer is no longer where described.
  const shortened = Buffer.concat([sections.subarray(0, body + 64), sections.subarray(body + 72)]);
  assert.throws(() => vcpuPagingStates(shortened, vmdesc), UnsupportedStreamError);
  assert.throws(() => vcpuPagingStates(shortened, vmdesc), refusal);
  // The stream ends inside vCPU 1's section.
  assert.throws(() => vcpuPagingStates(sections.subarray(0, body + 64), vmdesc), refusal);
  // The same cut in vCPU 0's place instead: vCPU 0 is the one named.
  const first = sections.indexOf(Buffer.concat([Buffer.of(3), Buffer.from("cpu")])) - 5 + 17;
  assert.ok(first < header, "vCPU 0's section comes first");
  const cutFirst = Buffer.concat([sections.subarray(0, first + 64), sections.subarray(first + 72)]);
  assert.throws(() => vcpuPagingStates(cutFirst, vmdesc), /Cannot find vCPU 0's section/);
  // Unmutated, both are read: the refusals above are the cuts' doing.
  assert.equal(vcpuPagingStates(sections, vmdesc).length, 2);
});

test("a description that lists a vCPU twice is refused, not read as two vCPUs", () => {
  const { sections, vmdesc } = linuxGuest("7.2", "linux-guest-smp2");
  const desc = JSON.parse(vmdesc.toString("utf8"));
  const cpus = desc.devices.filter((d: { name: string }) => d.name === "cpu");
  assert.equal(cpus.length, 2, "the description lists both vCPUs");
  cpus[1].instance_id = 0;
  assert.throws(
    () => vcpuPagingStates(sections, Buffer.from(JSON.stringify(desc))),
    /VMDESCRIPTION lists vCPU 0 twice/,
  );
});
