import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../errors.ts";
import { ramLayout, ramPageOf } from "./guest-physical.ts";

const GIB = 2 ** 30;
const MIB = 2 ** 20;

test("pc keeps RAM under 3.5 GiB below 4 GiB, and splits larger RAM at 3 GiB", () => {
  assert.deepEqual(ramLayout("pc", 512 * MIB), { belowPages: 131_072, abovePages: 0 });
  assert.deepEqual(ramLayout("pc-i440fx-7.2", 3 * GIB), { belowPages: 786_432, abovePages: 0 });
  const big = ramLayout("pc-i440fx-10.0", 4 * GIB);
  assert.deepEqual(big, { belowPages: 786_432, abovePages: 262_144 });
  assert.equal(ramPageOf(big, 0), 0);
  assert.equal(ramPageOf(big, 786_431), 786_431);
  assert.equal(ramPageOf(big, 786_432), null, "the PCI hole below 4 GiB");
  assert.equal(ramPageOf(big, 1_048_576), 786_432, "4 GiB is the first page above the split");
  assert.equal(ramPageOf(big, 1_048_576 + 262_143), 1_048_575);
  assert.equal(ramPageOf(big, 1_048_576 + 262_144), null, "past the end");
});

test("q35 splits at 2 GiB once RAM reaches 2.75 GiB", () => {
  assert.deepEqual(ramLayout("q35", 2 * GIB), { belowPages: 524_288, abovePages: 0 });
  assert.deepEqual(ramLayout("pc-q35-7.2", 3 * GIB), { belowPages: 524_288, abovePages: 262_144 });
});

test("other machine types are refused", () => {
  assert.throws(() => ramLayout("microvm", GIB), UsageError);
});

test("a spec whose extra arguments can move the split or the machine is refused", () => {
  const refused = [
    ["-machine", "pc,max-ram-below-4g=1G"],
    ["-M", "q35"],
    ["-global", "i440FX-pcihost.max-ram-below-4g=1G"],
  ];
  for (const args of refused) {
    assert.throws(() => ramLayout("pc", GIB, args), UsageError, args.join(" "));
  }
  assert.throws(() => ramLayout("pc,max-ram-below-4g=1G", GIB), UsageError);
  const kept = ["-device", "virtio-rng-pci", "-rtc", "base=utc"];
  assert.deepEqual(ramLayout("pc", GIB, kept), ramLayout("pc", GIB));
});
