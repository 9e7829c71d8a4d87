/**
 * The small 1.1 checkpoint of the tests and the golden fixture (not part of the public
 * surface): a raw frozen layer of 8 blocks in `<home>/layers/`, and block "ram0" of 8 pages of
 * which 5 are blocks of that layer (two pages share one), 2 stored, 1 zero.
 */
import crypto from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BlockIndex, LayerFile } from "../disk/index.ts";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import type { LayerInfo } from "./format/manifest.ts";
import type { CheckpointListing } from "./read/checkpoint-files.ts";
import type { CheckpointStore } from "./store/store.ts";
import { textPage } from "./test-support.ts";
import type { DiskBlockSource } from "./write/disk-pages.ts";
import { beginCheckpoint } from "./write/writer.ts";

export const SMALL_LAYER_ID = "00112233445566ff";
const LAYER_BLOCKS = 8;

/** Block n of the small layer. */
export function layerBlock(n: number): Buffer {
  return Buffer.alloc(PAGE_SIZE_BYTES, `frozen layer block ${n}; `);
}

/** Writes the small raw layer into `<home>/layers/` and returns its manifest record. */
export async function writeSmallLayer(home: string): Promise<LayerInfo> {
  const dir = join(home, "layers");
  await mkdir(dir, { recursive: true });
  const file = `${SMALL_LAYER_ID}.raw`;
  const content = Buffer.concat(Array.from({ length: LAYER_BLOCKS }, (_, n) => layerBlock(n)));
  await writeFile(join(dir, file), content);
  const layer = await LayerFile.open(join(dir, file), "raw");
  const index = await BlockIndex.build(layer);
  await layer.close();
  return {
    id: SMALL_LAYER_ID,
    file,
    format: "raw",
    bytes: content.byteLength,
    virtualBytes: content.byteLength,
    metaSha256: layer.metaSha256,
    contentSha256: index.layer.contentSha256,
    backing: null,
  };
}

/** Finds the small layer's blocks by digest, reading them from memory. */
function smallLayerSource(): DiskBlockSource {
  const byDigest = new Map<string, number>();
  for (let n = 0; n < LAYER_BLOCKS; n++) {
    byDigest.set(crypto.hash("sha256", layerBlock(n), "hex"), n * PAGE_SIZE_BYTES);
  }
  return {
    find(digest) {
      const offsetBytes = byDigest.get(Buffer.from(digest).toString("hex"));
      return offsetBytes === undefined ? null : { layer: SMALL_LAYER_ID, offsetBytes };
    },
    read: (_layer, offsetBytes) => layerBlock(offsetBytes / PAGE_SIZE_BYTES),
  };
}

/** The small 1.1 checkpoint; the layer must have been written into the store's home. */
export async function writeSmallWithDisk(
  store: CheckpointStore,
  layer: LayerInfo,
  name = "small-disk",
): Promise<CheckpointListing> {
  const w = await beginCheckpoint(store, {
    name,
    vm: { name: "vm1", disks: [{ path: "/images/disk.raw", format: "raw" }] },
    qemu: { version: "7.2.22" },
    stream: { configuration: Uint8Array.of(1, 2, 3), ram: { sectionId: 2 } },
    now: () => new Date("2026-01-02T03:04:05.000Z"),
    diskBlocks: smallLayerSource(),
  });
  w.setRamBlocks([{ name: "ram0", lengthBytes: 8 * PAGE_SIZE_BYTES }]);
  for (const [page, block] of [5, 4, 3, 2].entries()) await w.putPage(0, page, layerBlock(block));
  await w.putPage(0, 4, layerBlock(2));
  await w.putPage(0, 5, textPage(5));
  w.putZero(0, 6, 0);
  await w.putPage(0, 7, textPage(7));
  w.setDisks([layer], [{ drive: 0, layers: [layer.id] }]);
  w.setDeviceState({ sections: Buffer.from("sections!"), vmdescription: Buffer.from("{}") });
  return w.commit();
}
