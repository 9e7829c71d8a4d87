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
function linuxGuest(qemu: "7.2" | "10.0") {
  const dir = join(import.meta.dirname, "..", "..", "..", "test", "fixtures", `qemu-${qemu}`);
  return {
    sections: readFileSync(join(dir, "linux-guest.sections.bin")),
    vmdesc: readFileSync(join(dir, "linux-guest.vmdesc")),
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
