import assert from "node:assert/strict";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import { DiskLayerError } from "./layer-error.ts";
import { LayerFile } from "./layer-file.ts";
import { block, makeImages, qemuImg, qemuIo, tempDir } from "./test-support.ts";

const BLOCKS = 100; // 400 KiB: seven 64 KiB clusters
const filled = (n: number) => n % 3 !== 0 && (n < 32 || n >= 48); // blocks 32–47: one zero cluster

test("a qcow2 layer reads every block of the raw image it was converted from", async () => {
  const t = await tempDir();
  try {
    const { qcow2, content } = await makeImages(t.dir, BLOCKS, filled);
    const layer = await LayerFile.open(qcow2, "qcow2");
    try {
      assert.equal(layer.virtualBytes, BLOCKS * PAGE_SIZE_BYTES);
      assert.equal(layer.backingFile, null);
      for (let n = 0; n < BLOCKS; n++) {
        const at = n * PAGE_SIZE_BYTES;
        if (n >= 32 && n < 48) {
          assert.equal(layer.locate(at).kind, "unallocated", `block ${n}`);
          continue;
        }
        const want = content.subarray(at, at + PAGE_SIZE_BYTES);
        assert.deepEqual(Buffer.from(await layer.readBlock(at)), want, `block ${n}`);
      }
    } finally {
      await layer.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("an overlay maps only its own clusters; a written cluster changes its metaSha256", async () => {
  const t = await tempDir();
  try {
    const { qcow2 } = await makeImages(t.dir, BLOCKS, filled);
    const top = join(t.dir, "top.qcow2");
    qemuImg("create", "-q", "-f", "qcow2", "-b", qcow2, "-F", "qcow2", top);
    const empty = await LayerFile.open(top, "qcow2");
    await empty.close();
    assert.equal(empty.backingFile, qcow2);
    qemuIo(top, "write -P 0xab 128k 4k");
    const written = await LayerFile.open(top, "qcow2");
    try {
      assert.notEqual(written.metaSha256, empty.metaSha256, "a new cluster is new metadata");
      assert.equal(written.locate(0).kind, "unallocated", "the base's data is not the overlay's");
      assert.deepEqual(Buffer.from(await written.readBlock(128 * 1024)), Buffer.alloc(4096, 0xab));
      await assert.rejects(written.readBlock(0), DiskLayerError);
    } finally {
      await written.close();
    }
    qemuIo(top, "write -P 0xcd 128k 4k"); // in place: same mapping
    const same = await LayerFile.open(top, "qcow2", written);
    await same.close();
    await assert.rejects(
      LayerFile.open(top, "qcow2", { bytes: written.bytes, metaSha256: empty.metaSha256 }),
      /metadata changed/,
    );
  } finally {
    await t.cleanup();
  }
});

test("a raw layer maps guest offset to file offset", async () => {
  const t = await tempDir();
  try {
    const { raw } = await makeImages(t.dir, BLOCKS, filled);
    const layer = await LayerFile.open(raw, "raw");
    try {
      assert.deepEqual(Buffer.from(await layer.readBlock(7 * PAGE_SIZE_BYTES)), block(7));
      assert.equal(layer.locate(BLOCKS * PAGE_SIZE_BYTES).kind, "unallocated");
    } finally {
      await layer.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("unsupported or damaged images are refused with the reason", async () => {
  const t = await tempDir();
  try {
    const { raw, qcow2 } = await makeImages(t.dir, BLOCKS, filled);
    const cases: [string, () => Promise<void> | void, RegExp][] = [
      ["raw as qcow2", () => undefined, /bad magic/],
      [
        "extended L2",
        () =>
          void qemuImg(
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "extended_l2=on",
            `${t.dir}/x.qcow2`,
            "1M",
          ),
        /extended L2/,
      ],
      [
        "L1 outside",
        async () => {
          const f = await open(qcow2, "r+");
          const b = Buffer.alloc(8);
          b.writeBigUInt64BE(1n << 40n);
          await f.write(b, 0, 8, 40); // l1_table_offset
          await f.close();
        },
        /input ends|outside|malformed/,
      ],
    ];
    const paths = [raw, `${t.dir}/x.qcow2`, qcow2];
    for (const [i, [name, prepare, reason]] of cases.entries()) {
      await prepare();
      await assert.rejects(LayerFile.open(paths[i] ?? "", "qcow2"), (error: unknown) => {
        assert.ok(error instanceof DiskLayerError, `${name}: ${String(error)}`);
        assert.match(error.message, reason, name);
        return true;
      });
    }
    await writeFile(join(t.dir, "c.raw"), block(1));
    qemuImg(
      "convert",
      "-c",
      "-f",
      "raw",
      "-O",
      "qcow2",
      join(t.dir, "c.raw"),
      join(t.dir, "c.qcow2"),
    );
    const compressed = await LayerFile.open(join(t.dir, "c.qcow2"), "qcow2");
    assert.equal(compressed.locate(0).kind, "compressed");
    await assert.rejects(compressed.readBlock(0), /compressed/);
    await compressed.close();
    await assert.rejects(LayerFile.open(join(t.dir, "missing"), "qcow2"), /cannot be opened/);
  } finally {
    await t.cleanup();
  }
});
