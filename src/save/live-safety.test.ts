import assert from "node:assert/strict";
import { test } from "node:test";
import { saveModeFor } from "./live-safety.ts";

const v = (major: number, minor: number) => ({ major, minor, micro: 0 });

test("a live save pauses the guest on QEMU < 9.0 under TCG, and says why", () => {
  for (const [major, minor] of [
    [7, 2],
    [8, 2],
  ] as const) {
    const mode = saveModeFor(v(major, minor), "tcg", true);
    assert.equal(mode.live, false);
    assert.match(mode.pausedBecause ?? "", /QEMU .* under TCG can lose pages.*paused/);
  }
});

test("a live save stays live on QEMU ≥ 9.0, or under KVM on any version", () => {
  for (const [major, minor] of [
    [9, 0],
    [10, 0],
    [11, 1],
  ] as const) {
    assert.deepEqual(saveModeFor(v(major, minor), "tcg", true), {
      live: true,
      pausedBecause: null,
    });
  }
  assert.deepEqual(saveModeFor(v(7, 2), "kvm", true), { live: true, pausedBecause: null });
});

test("a save asked to pause pauses, with no reason to report", () => {
  assert.deepEqual(saveModeFor(v(10, 0), "tcg", false), { live: false, pausedBecause: null });
  assert.deepEqual(saveModeFor(v(7, 2), "tcg", false), { live: false, pausedBecause: null });
});
