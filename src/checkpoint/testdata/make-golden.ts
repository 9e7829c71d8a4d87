/**
 * Writes the golden fixture of format 1.0: the tests' small checkpoint, named "golden-1.0".
 * Run once per format version (node src/checkpoint/testdata/make-golden.ts) and commit the
 * result; never regenerate an existing version's fixture: it is what old files look like.
 */
import { cp, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { formatVersion } from "../format.ts";
import { tempStore, writeSmall } from "../test-support.ts";

const name = `golden-${formatVersion}`;
const t = await tempStore();
try {
  const listing = await writeSmall(t.store, name);
  const target = join(import.meta.dirname, name);
  await mkdir(target, { recursive: false });
  await cp(listing.dir, target, { recursive: true });
} finally {
  await t.cleanup();
}
