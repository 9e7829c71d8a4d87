/**
 * The manifest's frozen disk layers and drives (format 1.1, docs/format.md §2.2), validated
 * together: every drive's chain names listed layers, top first, each layer's backing being the
 * next one and the last having none, so a restore can rebuild the disk from the records alone.
 */
import { CHECKPOINT_LAYERS_MAX, DISK_CHAIN_LAYERS_MAX, VM_DISKS_MAX } from "../../limits.ts";
import type { DiskInfo, LayerInfo } from "./manifest.ts";
import type { Fail, Fields } from "./manifest-fields.ts";

const LAYER_ID = /^[0-9a-f]{16}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function layersAndDisks(f: Fields, fail: Fail): { layers: LayerInfo[]; disks: DiskInfo[] } {
  const layers = f.optionalArr("layers", CHECKPOINT_LAYERS_MAX).map((v, i) => {
    const l = f.at(v, `layers[${i}]`);
    const id = l.str("id", (s) => LAYER_ID.test(s));
    const format = l.str("format", (s) => s === "qcow2" || s === "raw") as LayerInfo["format"];
    return {
      id,
      file: l.str("file", (s) => s === `${id}.${format}`),
      format,
      bytes: l.int("bytes", 0, Number.MAX_SAFE_INTEGER),
      virtualBytes: l.int("virtualBytes", 0, Number.MAX_SAFE_INTEGER),
      metaSha256: l.str("metaSha256", (s) => SHA256_HEX.test(s)),
      contentSha256: l.str("contentSha256", (s) => SHA256_HEX.test(s)),
      backing: l.strOrNull("backing", (s) => LAYER_ID.test(s)),
    };
  });
  const byId = new Map(layers.map((l) => [l.id, l]));
  if (byId.size !== layers.length) throw fail("manifest lists a layer twice");
  const drives = new Set<number>();
  const disks = f.optionalArr("disks", VM_DISKS_MAX).map((v, i) => {
    const d = f.at(v, `disks[${i}]`);
    const drive = d.int("drive", 0, VM_DISKS_MAX - 1);
    const chain = d.arr("layers", DISK_CHAIN_LAYERS_MAX).map((id, k) => {
      const layer = typeof id === "string" ? byId.get(id) : undefined;
      if (layer === undefined)
        throw fail(`manifest field "disks[${i}].layers[${k}]" names no layer`);
      return layer;
    });
    chain.forEach((layer, k) => {
      if (layer.backing !== (chain[k + 1]?.id ?? null)) {
        throw fail(`manifest disk ${drive}: layer ${layer.id} is not backed by the next one`);
      }
    });
    if (chain.length === 0 || drives.has(drive))
      throw fail(`manifest field "disks[${i}]" is invalid`);
    drives.add(drive);
    return { drive, layers: chain.map((l) => l.id) };
  });
  return { layers, disks };
}
