import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { DecodeError } from "../errors.ts";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import { BlockIndex } from "./block-index.ts";
import { LayerFile } from "./layer-file.ts";
import { block, makeImages, qemuImg, qemuIo, sha256, tempDir } from "./test-support.ts";

const BLOCKS = 300;
const filled = (n: number) => n % 5 !== 0;

test("the index finds every non-zero block by its SHA-256, and nothing else", async () => {
  const t = await tempDir();
  try {
    const { qcow2 } = await makeImages(t.dir, BLOCKS, filled);
    const layer = await LayerFile.open(qcow2, "qcow2");
    const index = await BlockIndex.build(layer);
    await layer.close();
    assert.equal(index.size, 240);
    for (let n = 0; n < BLOCKS; n++) {
      const want = filled(n) ? n * PAGE_SIZE_BYTES : -1;
      assert.equal(index.find(sha256(block(n))), want, `block ${n}`);
    }
    assert.equal(
      index.find(sha256(Buffer.alloc(PAGE_SIZE_BYTES))),
      -1,
      "zero blocks are not indexed",
    );
    assert.equal(index.find(sha256(block(1, 2))), -1);
  } finally {
    await t.cleanup();
  }
});

test("raw and qcow2 images of the same disk have the same contentSha256; an overlay only its own", async () => {
  const t = await tempDir();
  try {
    const { raw, qcow2 } = await makeImages(t.dir, BLOCKS, filled);
    const indexOf = async (path: string, format: "raw" | "qcow2") => {
      const layer = await LayerFile.open(path, format);
      try {
        return await BlockIndex.build(layer);
      } finally {
        await layer.close();
      }
    };
    const a = await indexOf(raw, "raw");
    const b = await indexOf(qcow2, "qcow2");
    assert.equal(a.layer.contentSha256, b.layer.contentSha256);
    const top = join(t.dir, "top.qcow2");
    qemuImg("create", "-q", "-f", "qcow2", "-b", qcow2, "-F", "qcow2", top);
    qemuIo(top, "write -P 0x11 0 8k");
    const c = await indexOf(top, "qcow2");
    // Blocks 2–15 share the written 64 KiB cluster: QEMU copied them up (copy-on-write).
    const copied = [...Array(14).keys()].filter((i) => filled(i + 2)).length;
    assert.equal(c.size, 1 + copied, "two equal written blocks are one entry");
    assert.equal(c.find(sha256(Buffer.alloc(PAGE_SIZE_BYTES, 0x11))), 0);
    assert.equal(c.find(sha256(block(3))), 3 * PAGE_SIZE_BYTES, "copied up with the cluster");
    assert.equal(c.find(sha256(block(20))), -1, "the base's other blocks are in its own index");
  } finally {
    await t.cleanup();
  }
});

test("an index file round-trips, and any changed byte is refused", async () => {
  const t = await tempDir();
  try {
    const { qcow2 } = await makeImages(t.dir, 40, filled);
    const layer = await LayerFile.open(qcow2, "qcow2");
    const index = await BlockIndex.build(layer);
    await layer.close();
    const bytes = Buffer.from(index.encode());
    const back = BlockIndex.decode(bytes);
    assert.deepEqual(back.layer, index.layer);
    for (let n = 0; n < 40; n++)
      assert.equal(back.find(sha256(block(n))), index.find(sha256(block(n))));
    for (const at of [0, 5, 9, 13, 20, 127, 130, bytes.byteLength - 1]) {
      const bad = Buffer.from(bytes);
      bad[at] = (bad[at] ?? 0) ^ 1;
      if (at >= 24 && at < 96) continue; // layer identity: checked by the caller
      assert.throws(() => BlockIndex.decode(bad), DecodeError, `byte ${at}`);
    }
    assert.throws(() => BlockIndex.decode(bytes.subarray(0, bytes.byteLength - 16)), DecodeError);
  } finally {
    await t.cleanup();
  }
});
