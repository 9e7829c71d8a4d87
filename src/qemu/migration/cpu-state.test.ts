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

test("a Linux guest's vCPU is in 4-level long-mode paging with its CR3", () => {
  const dir = join(import.meta.dirname, "..", "..", "..", "test", "fixtures", "qemu-7.2");
  const sections = readFileSync(join(dir, "linux-guest.sections.bin"));
  const vmdesc = readFileSync(join(dir, "linux-guest.vmdesc"));
  assert.deepEqual(vcpuPagingStates(sections, vmdesc), [
    { index: 0, cr0: 0x80050033n, cr3: 0x6352000n, cr4: 0x6f0n, efer: 0xd01n },
  ]);
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
