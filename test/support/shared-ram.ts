/**
 * What QEMU's shared guest RAM holds before a restore writes it (ADR 0034, 0035): an eager
 * restore leaves zero pages as holes, sound only while QEMU itself puts no byte there before
 * it loads a stream.
 */
import assert from "node:assert/strict";
import { findQemuRam, type QemuRam } from "../../src/restore/guest-ram.ts";

/** Reads QEMU `pid`'s shared RAM back whole, 2 MiB at a time: every byte must be zero. */
export async function assertSharedRamEmpty(pid: number, ram: QemuRam): Promise<void> {
  const search = findQemuRam(pid, ram);
  search.qemuUp();
  const file = await search.found;
  try {
    const region = Buffer.alloc(2 * 2 ** 20);
    for (let at = 0; at < ram.sizeBytes; at += region.byteLength) {
      const { bytesRead } = await file.read(region, 0, region.byteLength, at);
      assert.equal(bytesRead, region.byteLength);
      assert.ok(
        region.every((b) => b === 0),
        `QEMU wrote into its RAM at ${at}`,
      );
    }
  } finally {
    await file.close();
  }
}
