import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import { readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { UsageError } from "../../errors.ts";
import { CHUNK_PAGES_MAX, PAGE_SIZE_BYTES } from "../../limits.ts";
import { CheckpointReader } from "../read/reader.ts";
import type { CheckpointStore } from "../store/store.ts";
import { prng, randomBytes, tempStore, textPage, writeSmall } from "../test-support.ts";
import { writeSmallLayer, writeSmallWithDisk } from "../test-support-disk.ts";
import { relayoutCheckpoint } from "./relayout.ts";
import { beginCheckpoint } from "./writer.ts";

const PAGES = 10 * CHUNK_PAGES_MAX;

/** 640 pages in one block: random ones, a few text duplicates, zero pages (one with fill 7). */
async function writeBig(store: CheckpointStore, name = "big"): Promise<void> {
  const rand = prng(11);
  const w = await beginCheckpoint(store, {
    name,
    vm: { name: "vm" },
    qemu: { version: "7.2.22" },
    stream: { configuration: Uint8Array.of(9), ram: { sectionId: 2 } },
    now: () => new Date("2026-03-04T05:06:07.000Z"),
  });
  w.setRamBlocks([{ name: "pc.ram", lengthBytes: PAGES * PAGE_SIZE_BYTES }]);
  for (let p = 0; p < PAGES; p++) {
    if (p % 50 === 0) w.putZero(0, p, p === 100 ? 7 : 0);
    else await w.putPage(0, p, p % 45 === 0 ? textPage(1) : randomBytes(rand, PAGE_SIZE_BYTES));
  }
  w.setDeviceState({ sections: Buffer.from("devices"), vmdescription: null });
  await w.commit();
}

/** "block/page" → SHA-256 (or "zero:<fill>") of every page, read back verified. */
async function contents(store: CheckpointStore, name: string): Promise<Map<string, string>> {
  const reader = await CheckpointReader.open(store, name);
  const out = new Map<string, string>();
  try {
    await reader.forEachPage((b, p, data, fill) => {
      out.set(`${b}/${p}`, data === null ? `zero:${fill}` : crypto.hash("sha256", data, "hex"));
    });
  } finally {
    await reader.close();
  }
  return out;
}

test("relayout keeps every page, packs the order into the first chunks, records the layout", async () => {
  const t = await tempStore();
  try {
    await writeBig(t.store);
    const before = await contents(t.store, "big");
    const order = [613, 7, 333, 7, 451, 100, 91, 2, 639, 255].map((page) => ({ block: 0, page }));
    const r = await relayoutCheckpoint(t.store, "big", order, { source: "test" });
    assert.equal(r.workingSetPages, 8, "repeats and zero pages (100) are left out");
    assert.equal(r.chunksAfter, 1);
    assert.ok(r.chunksBefore >= 6, `${r.chunksBefore} chunks before`);
    assert.deepEqual(await contents(t.store, "big"), before);
    const reader = await CheckpointReader.open(t.store, "big");
    try {
      [613, 7, 333, 451, 91, 2, 639, 255].forEach((page, slot) => {
        assert.deepEqual(reader.pageKind(0, page), { kind: "stored", chunk: 0, slot });
      });
      assert.deepEqual(reader.manifest.layout, {
        kind: "access-order",
        workingSetPages: 8,
        source: "test",
      });
      assert.equal(reader.manifest.createdAt, "2026-03-04T05:06:07.000Z");
      assert.equal(Buffer.from((await reader.deviceState()).sections).toString(), "devices");
      assert.deepEqual(reader.stream(), { configuration: Uint8Array.of(9), ram: { sectionId: 2 } });
      await reader.verify();
    } finally {
      await reader.close();
    }
    assert.deepEqual(await readdir(t.store.tempDir), [], "nothing left in tmp/");
  } finally {
    await t.cleanup();
  }
});

test("relayout of a 1.1 checkpoint keeps its disk references", async () => {
  const t = await tempStore();
  try {
    const layer = await writeSmallLayer(t.home);
    await writeSmallWithDisk(t.store, layer);
    const before = await contents(t.store, "small-disk");
    const refs = async () => {
      const reader = await CheckpointReader.open(t.store, "small-disk");
      const out = [0, 1, 2, 3, 4, 5, 7].map((p) => reader.diskRef(0, p)?.offsetBytes ?? null);
      await reader.close();
      return { out, format: reader.manifest.format, layers: reader.manifest.disks };
    };
    const old = await refs();
    await relayoutCheckpoint(t.store, "small-disk", [{ block: 0, page: 7 }]);
    assert.deepEqual(await refs(), old);
    assert.deepEqual(await contents(t.store, "small-disk"), before);
  } finally {
    await t.cleanup();
  }
});

test("relayout refuses a page outside the RAM blocks and leaves the checkpoint as it was", async () => {
  const t = await tempStore();
  try {
    await writeSmall(t.store);
    const before = await contents(t.store, "small");
    await assert.rejects(
      relayoutCheckpoint(t.store, "small", [{ block: 0, page: 16 }]),
      (error: unknown) =>
        error instanceof UsageError && /outside its RAM blocks/.test(error.message),
    );
    assert.deepEqual(await contents(t.store, "small"), before);
  } finally {
    await t.cleanup();
  }
});

test("a replacement interrupted between its renames is put back by cleanTemp", async () => {
  const t = await tempStore();
  try {
    await writeSmall(t.store);
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    assert.ok(dead !== undefined);
    await t.store.newTempPath();
    await rename(
      t.store.dirOf("small"),
      join(t.store.tempDir, `${dead}-0123456789abcdef.replaced-small`),
    );
    assert.deepEqual(await t.store.list(), [], "the crash window lists neither");
    assert.equal(await t.store.cleanTemp(), 1);
    assert.deepEqual(
      (await t.store.list()).map((c) => c.name),
      ["small"],
    );
  } finally {
    await t.cleanup();
  }
});
