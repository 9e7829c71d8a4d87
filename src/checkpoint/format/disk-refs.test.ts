/**
 * Disk references end to end against a real (qemu-img made) frozen layer: the writer turns
 * pages that equal layer blocks into references, the reader gives their bytes back verified,
 * and a layer changed behind snapwake's back fails with the layer and the page named.
 */
import assert from "node:assert/strict";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { DiskDuplicates, type LayerRecord, LayerStore } from "../../disk/index.ts";
import { block, makeImages } from "../../disk/test-support.ts";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { CheckpointReader } from "../read/reader.ts";
import { type TempStore, tempStore, textPage } from "../test-support.ts";
import type { DiskBlockSource } from "../write/disk-pages.ts";
import { beginCheckpoint } from "../write/writer.ts";

const PAGES = 100;
/** Page p of block "ram0": layer block 39 − p for p < 40 (page 40 repeats page 0), text, zero. */
function pageOf(p: number): Uint8Array {
  if (p < 40) return block(39 - p);
  if (p === 40) return block(39);
  if (p < 60) return textPage(p);
  return Buffer.alloc(PAGE_SIZE_BYTES);
}

async function frozenLayer(t: TempStore): Promise<LayerRecord> {
  const { qcow2 } = await makeImages(t.home, 64, () => true);
  const store = new LayerStore(t.home);
  const { id } = await store.adopt(qcow2, "qcow2");
  await store.release(id);
  return store.freeze(id);
}

async function writeWithDisk(
  t: TempStore,
  layer: LayerRecord,
  source?: DiskBlockSource,
  name = "disk",
) {
  const dups = await DiskDuplicates.open(new LayerStore(t.home), [layer]);
  try {
    const w = await beginCheckpoint(t.store, {
      name,
      vm: { name: "vm" },
      qemu: {},
      stream: { configuration: new Uint8Array(0) },
      diskBlocks: source ?? dups,
    });
    w.setRamBlocks([{ name: "ram0", lengthBytes: PAGES * PAGE_SIZE_BYTES }]);
    for (let p = 0; p < PAGES; p++) await w.putPage(0, p, pageOf(p));
    w.setDisks([layer], [{ drive: 0, layers: [layer.id] }]);
    w.setDeviceState({ sections: Uint8Array.of(1), vmdescription: null });
    return await w.commit();
  } finally {
    await dups.close();
  }
}

test("pages equal to frozen layer blocks are references, read back verified", async () => {
  const t = await tempStore();
  try {
    const layer = await frozenLayer(t);
    await writeWithDisk(t, layer);
    const r = await CheckpointReader.open(t.store, "disk");
    try {
      assert.equal(r.manifest.format, "1.1");
      const s = r.manifest.statistics;
      assert.deepEqual([s.pagesDisk, s.diskRefs, s.pagesStored, s.pagesZero], [41, 40, 19, 40]);
      assert.equal(s.diskRawBytes, 40 * PAGE_SIZE_BYTES);
      assert.deepEqual(r.manifest.disks, [{ drive: 0, layers: [layer.id] }]);
      const ref = r.diskRef(0, 2);
      assert.equal(ref?.layer.id, layer.id);
      assert.equal(ref?.offsetBytes, 37 * PAGE_SIZE_BYTES);
      assert.equal(r.diskRef(0, 50), null);
      const where = r.pageKind(0, 2);
      assert.ok(where.kind === "stored" && r.chunks.isDisk(where.chunk));
      assert.deepEqual(Buffer.from((await r.readChunk(where.chunk))[where.slot] ?? []), block(37));
      const seen = new Map<number, Buffer>();
      await r.forEachPage((_b, p, data, fill) => {
        seen.set(p, data === null ? Buffer.alloc(PAGE_SIZE_BYTES, fill) : Buffer.from(data));
      });
      for (let p = 0; p < PAGES; p++)
        assert.deepEqual(seen.get(p), Buffer.from(pageOf(p)), `page ${p}`);
      const report = await r.verify();
      assert.equal(report.diskPages, 40);
    } finally {
      await r.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("a block changed in the frozen layer fails the read, naming the layer and the page", async () => {
  const t = await tempStore();
  try {
    const layer = await frozenLayer(t);
    await writeWithDisk(t, layer);
    const opened = await new LayerStore(t.home).openLayer(layer);
    const file = opened.locate(37 * PAGE_SIZE_BYTES);
    await opened.close();
    assert.equal(file.kind, "data");
    const fh = await open(join(t.home, "layers", layer.file), "r+");
    await fh.write(Buffer.from("tampered"), 0, 8, file.kind === "data" ? file.hostOffset + 100 : 0);
    await fh.close();
    const r = await CheckpointReader.open(t.store, "disk");
    try {
      await assert.rejects(
        r.forEachPage(() => undefined),
        (error: unknown) => {
          assert.ok(error instanceof InvalidCheckpointError, String(error));
          const offset = 37 * PAGE_SIZE_BYTES;
          const want =
            `frozen disk layer ${layer.id} ("${layer.file}") was modified: its block at guest ` +
            `offset ${offset}, which block "ram0" page 2 refers to, fails its hash check`;
          assert.equal(error.reason, want);
          return true;
        },
      );
    } finally {
      await r.close();
    }
    await rm(join(t.home, "layers", layer.file));
    await assert.rejects(CheckpointReader.open(t.store, "disk"), /layer .* is missing/);
    assert.deepEqual(await t.store.list(), [], "a checkpoint missing a layer is not listed");
  } finally {
    await t.cleanup();
  }
});

test("a candidate block that differs from the page is not referenced; the page is stored", async () => {
  const t = await tempStore();
  try {
    const layer = await frozenLayer(t);
    const lying: DiskBlockSource = {
      find: () => ({ layer: layer.id, offsetBytes: 0 }),
      read: () => block(0),
    };
    await writeWithDisk(t, layer, lying);
    const r = await CheckpointReader.open(t.store, "disk");
    try {
      const s = r.manifest.statistics;
      assert.equal(s.pagesDisk, 1, "only page 39 is block 0");
      assert.equal(s.diskRefs, 1);
      assert.equal(s.pagesStored, 59);
      await r.verify();
    } finally {
      await r.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("rm keeps a layer another checkpoint uses, and removes it with the last one", async () => {
  const t = await tempStore();
  try {
    const layer = await frozenLayer(t);
    await writeWithDisk(t, layer, undefined, "one");
    await writeWithDisk(t, layer, undefined, "two");
    const path = join(t.home, "layers", layer.file);
    await t.store.remove("one");
    const r = await CheckpointReader.open(t.store, "two");
    try {
      assert.equal((await r.verify()).diskPages, 40);
    } finally {
      await r.close();
    }
    assert.equal(await t.store.cleanTemp(), 0, "gc removes nothing still used");
    await t.store.remove("two");
    await assert.rejects(open(path), /ENOENT/);
  } finally {
    await t.cleanup();
  }
});
