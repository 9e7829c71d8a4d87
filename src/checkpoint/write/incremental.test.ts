import assert from "node:assert/strict";
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { FileName, sharedPackFile } from "../format/format.ts";
import { packIdOf } from "../format/manifest.ts";
import { CheckpointReader } from "../read/reader.ts";
import { check, DigestCache } from "../store/digest-cache.ts";
import type { CheckpointStore } from "../store/store.ts";
import { flipBit, prng, randomBytes, rewriteManifest, tempStore } from "../test-support.ts";
import { relayoutCheckpoint } from "./relayout.ts";
import { shareCheckpoint, shareStore } from "./shared-pages.ts";
import { beginCheckpoint } from "./writer.ts";

const PAGES = 256; // four full chunks

/**
 * Writes `pages` (null: zero) as checkpoint `name`, sharing with `parent` when given, or with
 * the whole store when `parent` is "store".
 */
async function write(
  store: CheckpointStore,
  name: string,
  pages: readonly (Uint8Array | null)[],
  parent?: string,
): Promise<void> {
  const shared =
    parent === undefined
      ? null
      : parent === "store"
        ? await shareStore(store, null, { wholeStore: true })
        : await shareCheckpoint(store, parent);
  const w = await beginCheckpoint(store, {
    name,
    vm: { name: "vm1" },
    qemu: { version: "7.2.22" },
    stream: { configuration: Uint8Array.of(1) },
    ...(shared === null ? {} : { shared }),
  });
  w.setRamBlocks([{ name: "pc.ram", lengthBytes: pages.length * PAGE_SIZE_BYTES }]);
  for (const [i, page] of pages.entries()) {
    if (page === null) w.putZero(0, i, 0);
    else await w.putPage(0, i, page);
  }
  w.setDeviceState({ sections: Buffer.from(name), vmdescription: null });
  await w.commit();
}

/** Reads every page of `name` and compares it with `expected`. */
async function assertPages(
  store: CheckpointStore,
  name: string,
  expected: readonly (Uint8Array | null)[],
): Promise<void> {
  const r = await CheckpointReader.open(store, name);
  try {
    await r.verify();
    let seen = 0;
    await r.forEachPage((_b, p, data) => {
      seen++;
      const want = expected[p] ?? null;
      if (want === null) assert.equal(data, null, `${name} page ${p} is zero`);
      else assert.ok(data !== null && Buffer.from(data).equals(want), `${name} page ${p}`);
    });
    assert.equal(seen, expected.length);
  } finally {
    await r.close();
  }
}

async function manifestOf(store: CheckpointStore, name: string) {
  const r = await CheckpointReader.open(store, name);
  await r.close();
  return r.manifest;
}

function chain() {
  const rand = prng(11);
  const page = () => randomBytes(rand, PAGE_SIZE_BYTES);
  const c1 = Array.from({ length: PAGES }, (_, i) => (i % 16 === 15 ? null : page()));
  const c2 = c1.map((p, i) => (i < 8 ? page() : p)); // pages 0–7 changed
  // c3: pages 8–11 changed, page 200 holds what page 3 held in c1 only (c1's pack, via c2)
  const c3 = c2.map((p, i) => (i >= 8 && i < 12 ? page() : i === 200 ? (c1[3] ?? null) : p));
  return { c1, c2, c3 };
}

type Pages = readonly (Uint8Array | null)[];

/** Writes the chain c1 ← c2 ← c3 in a fresh store and runs `body` on it. */
async function withChain(
  body: (store: CheckpointStore, pages: { c1: Pages; c2: Pages; c3: Pages }) => Promise<void>,
): Promise<void> {
  const t = await tempStore();
  try {
    const pages = chain();
    await write(t.store, "c1", pages.c1);
    await write(t.store, "c2", pages.c2, "c1");
    await write(t.store, "c3", pages.c3, "c2");
    await body(t.store, pages);
  } finally {
    await t.cleanup();
  }
}

test("a chain of three incremental checkpoints stores each change once and reads bit-exact", async () => {
  await withChain(async (store, { c1, c2, c3 }) => {
    for (const [name, pages] of [
      ["c1", c1],
      ["c2", c2],
      ["c3", c3],
    ] as const)
      await assertPages(store, name, pages);
    const m1 = await manifestOf(store, "c1");
    const m2 = await manifestOf(store, "c2");
    const m3 = await manifestOf(store, "c3");
    assert.equal(m1.format, "1.0");
    assert.equal(m2.format, "1.2");
    assert.deepEqual(m2.parent, { name: "c1", createdAt: m1.createdAt });
    assert.equal(m2.statistics.pagesUnique, 8, "only the 8 changed pages are stored");
    assert.equal(m2.statistics.pagesShared, PAGES - PAGES / 16 - 8);
    assert.equal(m3.statistics.pagesUnique, 4, "page 200 is c1's page 3: shared, not stored");
    assert.deepEqual(
      m3.packs.map((p) => [p.id, p.writtenBy]),
      [
        [packIdOf(m2), "c2"],
        [packIdOf(m1), "c1"],
      ],
    );
    assert.ok(m3.statistics.storedBytes < m1.statistics.storedBytes / 10);
  });
});

test("removing the middle of a chain keeps the last restorable; the last link frees a pack", async () => {
  await withChain(async (store, { c1, c3 }) => {
    const m2 = await manifestOf(store, "c2");
    const c2Pack = join(store.dirOf("c3"), sharedPackFile(packIdOf(m2)));
    assert.equal((await stat(c2Pack)).nlink, 2, "c2's pack: its own file and c3's link");
    const report = await store.remove("c2");
    assert.equal(report.sharedBytes, m2.chunks.bytes + m2.packs.reduce((n, p) => n + p.bytes, 0));
    assert.ok(report.freedBytes >= m2.index.bytes + m2.deviceState.bytes, "its own files went");
    await store.cleanTemp();
    assert.equal((await stat(c2Pack)).nlink, 1, "c3 alone keeps c2's pack");
    await assertPages(store, "c3", c3);
    await assertPages(store, "c1", c1);
    await store.remove("c1");
    await assertPages(store, "c3", c3);
    await store.remove("c3");
    await store.cleanTemp();
    assert.deepEqual(await readdir(store.checkpointsDir), []);
    assert.deepEqual(await readdir(store.tempDir), []);
  });
});

test("a corrupt shared pack fails the child's read, naming the pack and who wrote it", async () => {
  await withChain(async (store) => {
    // A hard link is the same file: damaging c1's pack damages what c2 reads.
    await flipBit(store.dirOf("c1"), FileName.pack, 16 + 3 * PAGE_SIZE_BYTES + 9);
    const r = await CheckpointReader.open(store, "c2");
    try {
      await assert.rejects(
        r.verify(),
        /chunk \d+ \(shared pack "pack-[0-9a-f]{16}\.pack", written by c1\) (fails its hash check|does not decompress)/,
      );
    } finally {
      await r.close();
    }
  });
});

test("a shared pack that is missing or of the wrong size is refused at open", async () => {
  await withChain(async (store) => {
    await rewriteManifest(store.dirOf("c2"), (b) => ({
      ...b,
      packs: b.packs.map((p) => ({ ...p, bytes: p.bytes + 1 })),
    }));
    await assert.rejects(
      CheckpointReader.open(store, "c2"),
      /shared pack file "pack-[0-9a-f]{16}\.pack" is truncated/,
    );
    const [link] = (await readdir(store.dirOf("c3"))).filter((f) => f.startsWith("pack-"));
    await rm(join(store.dirOf("c3"), link ?? "none"));
    await assert.rejects(
      CheckpointReader.open(store, "c3"),
      /shared pack file "pack-[0-9a-f]{16}\.pack" is missing/,
    );
    assert.equal((await store.list()).length, 1, "only c1 is listed");
  });
});

test("a relayout of an incremental checkpoint keeps sharing its parent's pages", async () => {
  await withChain(async (store, { c2 }) => {
    const before = await manifestOf(store, "c2");
    const order = [5, 100, 3].map((page) => ({ block: 0, page }));
    await relayoutCheckpoint(store, "c2", order);
    const after = await manifestOf(store, "c2");
    assert.equal(after.statistics.pagesShared, before.statistics.pagesShared);
    assert.equal(after.statistics.pagesUnique, 8);
    assert.deepEqual(after.parent, before.parent);
    await assertPages(store, "c2", c2);
  });
});

test("sharing with the whole store stores pages of unrelated checkpoints once", async () => {
  await withChain(async (store, { c1, c3 }) => {
    const rand = prng(99);
    // d: no parent; half of it is c1's first half (e.g. the same kernel), the rest new.
    const d = c1.map((p, i) => (i < PAGES / 2 ? p : randomBytes(rand, PAGE_SIZE_BYTES)));
    await write(store, "d", d, "store");
    const m = await manifestOf(store, "d");
    assert.equal(m.parent, undefined, "no lineage: shared by content only");
    assert.equal(m.statistics.pagesUnique, PAGES / 2, "only the new half is stored");
    assert.ok(m.packs.some((p) => p.writtenBy === "c1"));
    await assertPages(store, "d", d);
    // A damaged checkpoint in the store: its cached page digests still put it in the index, and
    // the commit's read-back catches it: nothing is listed, the error names who wrote the pack.
    await flipBit(store.dirOf("c3"), FileName.pack, 16 + 9);
    await assert.rejects(write(store, "e", c3, "store"), /written by c3\) fails its hash check/);
    assert.ok(!(await store.list()).some((c) => c.name === "e"));
    // Without its cache the index reads c3, finds the damage and skips it: e stores those pages.
    await rm(join(store.home, "cache"), { recursive: true, force: true });
    await write(store, "e", c3, "store");
    await assertPages(store, "e", c3);
  });
});

test("the page-digest cache spares reading packs, and a stale entry is not trusted", async () => {
  await withChain(async (store, { c2 }) => {
    const m1 = await manifestOf(store, "c1");
    const cache = new DigestCache(store.home);
    assert.equal((await cache.load(packIdOf(m1))).size, PAGES / 64, "c1's commit cached its pack");
    // Damage every cached digest of c1's pack: the chunk hashes no longer match, so indexing
    // reads the chunks instead, and the result is the same.
    const cached = await cache.load(packIdOf(m1));
    for (const d of cached.values()) d.fill(7);
    await cache.save(packIdOf(m1), cached);
    await write(store, "c2b", c2, "c1");
    const m = await manifestOf(store, "c2b");
    assert.equal(m.statistics.pagesUnique, 8);
    await assertPages(store, "c2b", c2);
    assert.ok(check(await cache.load(packIdOf(m1)), (await firstChunk(store, "c1")) ?? fail()));
    await store.remove("c2b");
    await store.remove("c3");
    await store.remove("c2");
    await store.remove("c1");
    await store.cleanTemp();
    assert.deepEqual(await readdir(cache.dir), [], "gc drops the cache of unlinked packs");
  });
});

async function firstChunk(store: CheckpointStore, name: string) {
  const r = await CheckpointReader.open(store, name);
  await r.close();
  return r.chunks.entry(0);
}

function fail(): never {
  throw new Error("no chunk");
}
