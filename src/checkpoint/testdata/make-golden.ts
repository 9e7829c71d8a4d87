/**
 * Writes the golden fixture of one format version: the tests' small checkpoint (1.0), or the
 * small checkpoint with disk references and its frozen layer (1.1: golden-1.1/ and
 * golden-1.1-layers/). Run once per format version and commit the result
 * (node src/checkpoint/testdata/make-golden.ts 1.1); never regenerate an existing version's
 * fixture: it is what old files look like.
 */
import { cp, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { formatVersion } from "../format.ts";
import { tempStore, writeSmall } from "../test-support.ts";
import { writeSmallLayer, writeSmallWithDisk } from "../test-support-disk.ts";

const version = process.argv[2] ?? formatVersion;
const name = `golden-${version}`;
const t = await tempStore();
try {
  const listing =
    version === "1.0"
      ? await writeSmall(t.store, name)
      : await writeSmallWithDisk(t.store, await writeSmallLayer(t.home), name);
  const target = join(import.meta.dirname, name);
  await mkdir(target, { recursive: false });
  await cp(listing.dir, target, { recursive: true });
  if (version !== "1.0") await cp(t.store.layersDir, `${target}-layers`, { recursive: true });
} finally {
  await t.cleanup();
}
