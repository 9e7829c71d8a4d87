import assert from "node:assert/strict";
import { mkdir, open, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import { DiskDuplicates } from "./disk-duplicates.ts";
import { collectLayers, readHold, writeHold } from "./layer-gc.ts";
import { LayerStore } from "./layer-store.ts";
import { block, makeImages, qemuImg, qemuIo, sha256, tempDir } from "./test-support.ts";

test("adopt links the image, an overlay writes on top, freeze records identity and index", async () => {
  const t = await tempDir();
  try {
    const { qcow2 } = await makeImages(t.dir, 64, () => true);
    const store = new LayerStore(join(t.dir, "home"));
    const base = await store.adopt(qcow2, "qcow2");
    assert.equal((await stat(store.pathOf(base.id, "qcow2"))).ino, (await stat(qcow2)).ino);
    const top = await store.createOverlay({
      id: base.id,
      format: "qcow2",
      virtualBytes: base.virtualBytes,
    });
    await assert.rejects(store.chain(top, 8), /not frozen/);
    qemuIo(store.pathOf(top, "qcow2"), "write -P 0x42 64k 4k");
    const frozen = [await store.freeze(base.id), await store.freeze(top)];
    assert.deepEqual(await store.freeze(top), frozen[1], "freeze is idempotent");
    const chain = await store.chain(top, 8);
    assert.deepEqual(
      chain.map((l) => l.id),
      [top, base.id],
    );
    assert.equal(chain[0]?.backing, base.id);
    const dups = await DiskDuplicates.open(store, chain);
    try {
      assert.deepEqual(dups.find(sha256(Buffer.alloc(PAGE_SIZE_BYTES, 0x42))), {
        layer: top,
        offsetBytes: 65536,
      });
      assert.deepEqual(dups.find(sha256(block(3))), {
        layer: base.id,
        offsetBytes: 3 * PAGE_SIZE_BYTES,
      });
      assert.deepEqual(Buffer.from(await dups.read(base.id, 3 * PAGE_SIZE_BYTES)), block(3));
    } finally {
      await dups.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("a damaged index cache is rebuilt; a layer changed behind our back is refused", async () => {
  const t = await tempDir();
  try {
    const { qcow2 } = await makeImages(t.dir, 64, () => true);
    const store = new LayerStore(join(t.dir, "home"));
    const { id } = await store.adopt(qcow2, "qcow2");
    const record = await store.freeze(id);
    const indexPath = join(store.dir, `${id}.index`);
    await writeFile(indexPath, "garbage");
    assert.equal((await store.loadIndex(record)).size, 64);
    const file = await open(store.pathOf(id, "qcow2"), "r+");
    const layer = await store.openLayer(record);
    const place = layer.locate(5 * PAGE_SIZE_BYTES);
    await layer.close();
    assert.equal(place.kind, "data");
    await file.write(Buffer.from("changed"), 0, 7, place.kind === "data" ? place.hostOffset : 0);
    await file.close();
    await writeFile(indexPath, "garbage");
    await assert.rejects(store.loadIndex(record), /content changed since it was frozen/);
    qemuImg("resize", "-f", "qcow2", store.pathOf(id, "qcow2"), "+1M");
    await assert.rejects(store.openLayer(record), /metadata changed|bytes, expected/);
  } finally {
    await t.cleanup();
  }
});

test("gc keeps what manifests, holds and live creators reach, with their backing layers", async () => {
  const t = await tempDir();
  try {
    const home = join(t.dir, "home");
    const { qcow2 } = await makeImages(t.dir, 16, () => true);
    const store = new LayerStore(home);
    const base = await store.adopt(qcow2, "qcow2");
    const over = (below: string) =>
      store.createOverlay({ id: below, format: "qcow2", virtualBytes: base.virtualBytes });
    const mid = await over(base.id);
    const held = await over(mid);
    const lonely = await over(base.id);
    assert.deepEqual(await collectLayers(home, []), [], "pending for this live process: kept");
    for (const id of [base.id, mid, held, lonely]) await store.release(id);
    const vmDir = join(home, "vms", "vm1");
    await mkdir(vmDir, { recursive: true });
    await writeHold(vmDir, [{ drive: 0, active: held }]);
    assert.deepEqual(await readHold(vmDir), [{ drive: 0, active: held }]);
    assert.deepEqual(await collectLayers(home, []), [lonely]);
    await writeFile(join(vmDir, "disk-layers.json"), "{}");
    assert.deepEqual(await collectLayers(home, []), [], "an unreadable hold keeps everything");
    await writeHold(vmDir, []);
    assert.deepEqual(await collectLayers(home, [mid]), [held]);
    assert.deepEqual(await collectLayers(home, []), [base.id, mid].sort());
    assert.deepEqual(
      (await readdir(store.dir)).filter((f) => !f.startsWith("pending")),
      [],
    );
    assert.equal((await stat(qcow2)).size > 0, true, "the user's own image is untouched");
  } finally {
    await t.cleanup();
  }
});

test("only standalone images are adopted", async () => {
  const t = await tempDir();
  try {
    const { qcow2 } = await makeImages(t.dir, 16, () => true);
    const top = join(t.dir, "top.qcow2");
    qemuImg("create", "-q", "-f", "qcow2", "-b", qcow2, "-F", "qcow2", top);
    await assert.rejects(new LayerStore(join(t.dir, "home")).adopt(top, "qcow2"), /backing file/);
  } finally {
    await t.cleanup();
  }
});
