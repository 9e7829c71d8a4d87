/**
 * Every format version this reader accepts has a golden fixture (docs/format.md §6). Each
 * fixture must open, verify and read back as the small checkpoint the tests write today; and
 * today's writer must still produce the same page map, chunk hashes, device file and pack
 * header, so an encoding change cannot slip in without a version bump. Compressed bytes are not
 * compared: a newer zstd may compress differently without any change to the format.
 */
import assert from "node:assert/strict";
import { cp, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { FileName } from "../format/format.ts";
import {
  SMALL_RUNTIME,
  tempStore,
  writeSmall,
  writeSmallChild,
  writeSmallSaved,
} from "../test-support.ts";
import { SMALL_LAYER_ID, writeSmallLayer, writeSmallWithDisk } from "../test-support-disk.ts";
import { CheckpointReader } from "./reader.ts";

const GOLDEN = "golden-1.0";

async function pagesOf(reader: CheckpointReader): Promise<Map<string, string>> {
  const pages = new Map<string, string>();
  await reader.forEachPage((b, p, data, fill) => {
    pages.set(`${b}/${p}`, data === null ? `zero ${fill}` : Buffer.from(data).toString("base64"));
  });
  return pages;
}

/** Each chunk's page count and content hash: what the format fixes, whatever zstd emits. */
function chunkIds(r: CheckpointReader): [number, string][] {
  return [...Array(r.chunks.count).keys()].map((c) => {
    const e = r.chunks.entry(c);
    return [e.pageCount, Buffer.from(e.sha256).toString("hex")];
  });
}

test("the 1.0 golden fixture opens, verifies and equals what the writer produces today", async () => {
  const t = await tempStore();
  try {
    const goldenDir = t.store.dirOf(GOLDEN);
    await cp(join(import.meta.dirname, "testdata", GOLDEN), goldenDir, { recursive: true });
    const fresh = await writeSmall(t.store, "today");
    const golden = await CheckpointReader.open(t.store, GOLDEN);
    const today = await CheckpointReader.open(t.store, "today");
    try {
      assert.equal(golden.manifest.format, "1.0");
      await golden.verify();
      assert.deepEqual(await pagesOf(golden), await pagesOf(today));
      assert.deepEqual(await golden.deviceState(), await today.deviceState());
      assert.deepEqual(golden.stream(), today.stream());
      assert.deepEqual(today.pageMap.entries, golden.pageMap.entries, "page map as in 1.0");
      assert.deepEqual(chunkIds(today), chunkIds(golden), "chunk contents and hashes as in 1.0");
      for (const [file, bytes] of [
        [FileName.pack, 16], // header
        [FileName.index, 32], // header up to the (compressed) body lengths
        [FileName.device, Number.POSITIVE_INFINITY],
      ] as const) {
        const want = (await readFile(join(goldenDir, file))).subarray(0, bytes);
        assert.deepEqual((await readFile(join(fresh.dir, file))).subarray(0, bytes), want, file);
      }
    } finally {
      await golden.close();
      await today.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("the 1.1 golden fixture (disk references) opens, verifies and equals today's writer", async () => {
  const t = await tempStore();
  try {
    const golden = "golden-1.1";
    const goldenDir = t.store.dirOf(golden);
    await cp(join(import.meta.dirname, "testdata", golden), goldenDir, { recursive: true });
    const fixtureLayers = join(import.meta.dirname, "testdata", `${golden}-layers`);
    const layerFile = `${SMALL_LAYER_ID}.raw`;
    const fixtureLayer = await readFile(join(fixtureLayers, layerFile));
    const layer = await writeSmallLayer(t.home); // today's layer, where the fixture expects it
    assert.deepEqual(await readFile(join(t.store.layersDir, layerFile)), fixtureLayer);
    const fresh = await writeSmallWithDisk(t.store, layer, "today");
    const old = await CheckpointReader.open(t.store, golden);
    const today = await CheckpointReader.open(t.store, "today");
    try {
      assert.equal(old.manifest.format, "1.1");
      assert.equal((await old.verify()).diskPages, 4);
      assert.deepEqual(await pagesOf(old), await pagesOf(today));
      assert.deepEqual(today.pageMap.entries, old.pageMap.entries, "page map as in 1.1");
      assert.deepEqual(chunkIds(today), chunkIds(old), "chunk contents and hashes as in 1.1");
      assert.deepEqual(today.manifest.layers, old.manifest.layers);
      assert.deepEqual(today.manifest.disks, old.manifest.disks);
      assert.deepEqual(Buffer.from(today.diskRefs.bytes), Buffer.from(old.diskRefs.bytes));
      const header = async (dir: string) =>
        (await readFile(join(dir, FileName.index))).subarray(0, 64);
      const [a, b] = [await header(goldenDir), await header(fresh.dir)];
      assert.deepEqual(a.subarray(0, 32), b.subarray(0, 32), "index header up to the body lengths");
      assert.deepEqual(a.subarray(48), b.subarray(48), "diskRefs and reserved");
    } finally {
      await old.close();
      await today.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("the 1.2 golden fixture (a shared pack) opens, verifies and equals today's writer", async () => {
  const t = await tempStore();
  try {
    const golden = "golden-1.2";
    const goldenDir = t.store.dirOf(golden);
    await cp(join(import.meta.dirname, "testdata", golden), goldenDir, { recursive: true });
    const fresh = await writeSmallChild(t.store, (await writeSmall(t.store)).name, "today");
    const old = await CheckpointReader.open(t.store, golden);
    const today = await CheckpointReader.open(t.store, "today");
    try {
      assert.equal(old.manifest.format, "1.2");
      await old.verify();
      assert.deepEqual(await pagesOf(old), await pagesOf(today));
      assert.deepEqual(today.pageMap.entries, old.pageMap.entries, "page map as in 1.2");
      assert.deepEqual(chunkIds(today), chunkIds(old), "chunk contents and hashes as in 1.2");
      const packs = (r: CheckpointReader) =>
        [...Array(r.chunks.count).keys()].map((c) => r.chunks.packOf(c));
      assert.deepEqual(packs(old), [0, 1], "the own chunk first, then the shared one");
      assert.deepEqual(packs(today), packs(old));
      assert.equal(old.manifest.statistics.pagesShared, today.manifest.statistics.pagesShared);
      assert.deepEqual(old.manifest.parent, {
        name: "small",
        createdAt: "2026-01-02T03:04:05.000Z",
      });
      const header = async (dir: string) =>
        (await readFile(join(dir, FileName.index))).subarray(0, 64);
      const [a, b] = [await header(goldenDir), await header(fresh.dir)];
      assert.deepEqual(a.subarray(0, 32), b.subarray(0, 32), "index header up to the body lengths");
    } finally {
      await old.close();
      await today.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("the 1.3 golden fixture (QEMU version and machine type) opens, verifies and equals today's writer", async () => {
  const t = await tempStore();
  try {
    const golden = "golden-1.3";
    await cp(join(import.meta.dirname, "testdata", golden), t.store.dirOf(golden), {
      recursive: true,
    });
    await writeSmallSaved(t.store, "today");
    const old = await CheckpointReader.open(t.store, golden);
    const today = await CheckpointReader.open(t.store, "today");
    try {
      assert.equal(old.manifest.format, "1.3");
      assert.equal(today.manifest.format, "1.3");
      await old.verify();
      assert.deepEqual(old.manifest.runtime, SMALL_RUNTIME);
      assert.deepEqual(today.manifest.runtime, old.manifest.runtime);
      assert.deepEqual(await pagesOf(old), await pagesOf(today));
      assert.deepEqual(today.pageMap.entries, old.pageMap.entries, "page map as in 1.3");
      assert.deepEqual(chunkIds(today), chunkIds(old), "chunk contents and hashes as in 1.3");
    } finally {
      await old.close();
      await today.close();
    }
  } finally {
    await t.cleanup();
  }
});
