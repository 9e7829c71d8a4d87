import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  type CheckpointListing,
  CheckpointReader,
  CheckpointStore,
  ChunkWorkers,
} from "../checkpoint/index.ts";
import { textPage, writePages } from "../checkpoint/test-support.ts";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import type { Progress, ProgressListener } from "../progress.ts";
import { checkpointIdentity } from "../store/identity.ts";
import { tempDir } from "../store/layout.ts";
import { withSmallTmpfs } from "../test-support.ts";
import { buildImage, checkImage, ramImagePaths } from "./ram-image.ts";

const PAGES = 4096; // 16 MiB of RAM: every fourth page zero, the others text
const pageOf = (p: number) => (p % 4 === 3 ? new Uint8Array(PAGE_SIZE_BYTES) : textPage(p));

let workers: ChunkWorkers;
before(() => {
  workers = ChunkWorkers.start(2);
});
after(async () => {
  await workers.close();
});

async function build(home: string, name: string, onProgress?: ProgressListener) {
  const store = new CheckpointStore({ home });
  const reader = await CheckpointReader.open(store, name);
  try {
    const identity = await checkpointIdentity(home, name);
    assert.ok(identity !== null);
    const key = { checkpoint: name, identity, block: "ram", lengthBytes: PAGES * PAGE_SIZE_BYTES };
    return await buildImage(home, key, { reader, blockIndex: 0, store, onProgress }, workers);
  } finally {
    await reader.close();
  }
}

test("a built image holds every page at its offset, zero pages as holes, and checks", async () => {
  const home = await mkdtemp(join(tmpdir(), "snapwake-image-build-"));
  try {
    const listing: CheckpointListing = await writePages(
      new CheckpointStore({ home }),
      "c",
      PAGES,
      pageOf,
    );
    assert.equal(listing.name, "c");
    const progress: Progress[] = [];
    const image = await build(home, "c", (p) => progress.push(p));
    assert.deepEqual(progress, [
      { phase: "building the RAM image", doneBytes: 0, totalBytes: PAGES * PAGE_SIZE_BYTES },
    ]);
    try {
      const { image: path } = ramImagePaths(home, "c");
      const bytes = await readFile(path);
      assert.equal(bytes.length, PAGES * PAGE_SIZE_BYTES);
      for (let p = 0; p < PAGES; p++) {
        const at = p * PAGE_SIZE_BYTES;
        assert.ok(bytes.subarray(at, at + PAGE_SIZE_BYTES).equals(pageOf(p)), `page ${p}`);
      }
      const allocated = (await stat(path)).blocks * 512;
      assert.ok(
        allocated <= (PAGES * PAGE_SIZE_BYTES * 3) / 4,
        `zero pages are holes (${allocated})`,
      );
      assert.equal(await checkImage(home, image, workers), null);
      assert.deepEqual(await readdir(tempDir(home)), [], "nothing is left in tmp/");
    } finally {
      await image.file.close();
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

test("a full disk fails the build with what to do, and leaves nothing in tmp/", async (t) => {
  await withSmallTmpfs(t, 8, async (home) => {
    await writePages(new CheckpointStore({ home }), "c", PAGES, pageOf); // ~0.2 MiB stored
    await assert.rejects(build(home, "c"), (error: Error) => {
      assert.match(error.message, /the disk is full .* --mode eager/);
      return true;
    });
    assert.deepEqual(await readdir(tempDir(home)), [], "nothing is left in tmp/");
  });
});
