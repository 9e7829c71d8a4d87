/**
 * Writes the golden fixture of the newest format version: for 1.3, the small checkpoint with
 * the runtime a save records (golden-1.3/); for 1.2, an incremental child of the
 * small checkpoint (golden-1.2/, its shared pack a plain copy); for 1.1, the small checkpoint
 * with disk references and its frozen layer (golden-1.1/ and golden-1.1-layers/; 1.0's was the
 * tests' small checkpoint). Run once per format version and commit the result
 * (node src/checkpoint/read/testdata/make-golden.ts); never regenerate an existing version's
 * fixture: it is what old files look like (the mkdir refuses an existing one).
 */
import { cp, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { formatVersion } from "../../format/format.ts";
import { tempStore, writeSmall, writeSmallChild, writeSmallSaved } from "../../test-support.ts";
import { writeSmallLayer, writeSmallWithDisk } from "../../test-support-disk.ts";

const version: string = formatVersion;
const name = `golden-${version}`;
const t = await tempStore();
try {
  const listing =
    version === "1.0"
      ? await writeSmall(t.store, name)
      : version === "1.1"
        ? await writeSmallWithDisk(t.store, await writeSmallLayer(t.home), name)
        : version === "1.2"
          ? await writeSmallChild(t.store, (await writeSmall(t.store)).name, name)
          : await writeSmallSaved(t.store, name);
  const target = join(import.meta.dirname, name);
  await mkdir(target, { recursive: false });
  await cp(listing.dir, target, { recursive: true });
  if (version === "1.1") await cp(t.store.layersDir, `${target}-layers`, { recursive: true });
} finally {
  await t.cleanup();
}
