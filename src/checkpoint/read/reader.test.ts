/** One test per corruption (docs/format.md §7): each must produce its own clear reason. */
import assert from "node:assert/strict";
import { appendFile, readFile, truncate, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { InvalidCheckpointError, NotFoundError } from "../../errors.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { CodecId } from "../format/codec.ts";
import { FileName, KIND_SHIFT } from "../format/format.ts";
import type { CheckpointStore } from "../store/store.ts";
import {
  flipBit,
  prng,
  randomBytes,
  rewriteManifest,
  rewritePageMap,
  tempStore,
  textPage,
  writeSmall,
} from "../test-support.ts";
import { beginCheckpoint } from "../write/writer.ts";
import { CheckpointReader } from "./reader.ts";

/** Writes the small checkpoint, lets `corrupt` damage its directory, returns the store. */
async function withCorrupted(
  corrupt: (dir: string) => Promise<void>,
  check: (store: CheckpointStore) => Promise<void>,
): Promise<void> {
  const t = await tempStore();
  try {
    const listing = await writeSmall(t.store);
    await corrupt(listing.dir);
    await check(t.store);
  } finally {
    await t.cleanup();
  }
}

function invalid(reason: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(
      error instanceof InvalidCheckpointError,
      `InvalidCheckpointError, got ${String(error)}`,
    );
    assert.match(error.message, /^Cannot use checkpoint "small": /);
    assert.match(error.reason, reason);
    return true;
  };
}

const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
  [
    "bad magic",
    (dir) => flipBit(dir, FileName.manifest, 0),
    /^manifest does not start with "snapwake-checkpoint " \(not a snapwake checkpoint\)$/,
  ],
  [
    "manifest truncated in its body",
    async (dir) => truncate(join(dir, FileName.manifest), 200),
    /^manifest is truncated: its body has \d+ of \d+ bytes$/,
  ],
  [
    "manifest truncated inside its header lines",
    async (dir) => truncate(join(dir, FileName.manifest), 40),
    /^manifest is truncated inside its header lines$/,
  ],
  [
    "bytes appended to the manifest",
    async (dir) => appendFile(join(dir, FileName.manifest), "x"),
    /^manifest has 1 bytes after its body$/,
  ],
  [
    "manifest hash mismatch",
    (dir) => flipBit(dir, FileName.manifest, -10),
    /^manifest hash mismatch/,
  ],
  [
    "a flipped bit in the version reads as a hash mismatch, not as too new",
    (dir) => flipBit(dir, FileName.manifest, "snapwake-checkpoint ".length),
    /^manifest hash mismatch/,
  ],
  [
    "newer major version",
    (dir) => rewriteManifest(dir, (b) => b, "2.0"),
    /^format 2\.0 is not supported \(this snapwake reads 1\.0 to 1\.3\)$/,
  ],
  [
    "newer minor version",
    (dir) => rewriteManifest(dir, (b) => b, "1.4"),
    /^format 1\.4 is not supported/,
  ],
  [
    "a bad field behind a valid hash",
    (dir) => rewriteManifest(dir, (b) => ({ ...b, pageSizeBytes: 8192 })),
    /^manifest field "pageSizeBytes" is missing or invalid$/,
  ],
  [
    "manifest of another checkpoint",
    (dir) => rewriteManifest(dir, (b) => ({ ...b, name: "other" })),
    /^its manifest names it "other"$/,
  ],
  [
    "index hash mismatch",
    (dir) => flipBit(dir, FileName.index, 70),
    /^index hash mismatch: "index\.bin" was modified or corrupted$/,
  ],
  [
    "unknown page-map kind",
    (dir) => rewritePageMap(dir, (e) => e.set([(5 << KIND_SHIFT) >>> 0], 3)),
    /^page map entry for block "ram0" page 3 has unknown kind 5$/,
  ],
  [
    "a disk duplicate in a checkpoint without disk chunks",
    (dir) => rewritePageMap(dir, (e) => e.set([(2 << KIND_SHIFT) >>> 0], 17)),
    /^page map entry for block "rom" page 1 is a disk duplicate in the wrong kind of chunk 0$/,
  ],
  [
    "page map pointing past the chunk table",
    (dir) => rewritePageMap(dir, (e) => e.set([((1 << KIND_SHIFT) | (9 << 6)) >>> 0], 0)),
    /^page map entry for block "ram0" page 0 points to chunk 9 of 1$/,
  ],
  [
    "truncated pack file",
    async (dir) => truncate(join(dir, FileName.pack), 1000),
    /^pack file "chunks\.pack" is truncated: 1000 of \d+ bytes$/,
  ],
  [
    "missing device file",
    (dir) => unlink(join(dir, FileName.device)),
    /^device state file "device\.bin" is missing$/,
  ],
  [
    "missing index file",
    (dir) => unlink(join(dir, FileName.index)),
    /^index file "index\.bin" is missing$/,
  ],
  [
    "bad pack magic",
    (dir) => flipBit(dir, FileName.pack, 1),
    /^pack file "chunks\.pack" is not a checkpoint pack \(bad magic\)$/,
  ],
];

for (const [name, corrupt, reason] of cases) {
  test(`open rejects: ${name}`, () =>
    withCorrupted(corrupt, async (store) => {
      await assert.rejects(CheckpointReader.open(store, "small"), invalid(reason));
      const { checkpoints, invalid: bad } = await store.scan();
      assert.deepEqual(checkpoints, [], "a corrupt checkpoint is not listed");
      assert.deepEqual(
        bad.map((b) => b.name),
        ["small"],
      );
    }));
}

test("a flipped bit in a chunk fails its hash check, naming the chunk", () =>
  withCorrupted(
    (dir) => flipBit(dir, FileName.pack, 16 + 5000), // inside a random page: a raw zstd block
    async (store) => {
      const reader = await CheckpointReader.open(store, "small");
      try {
        const why = /^chunk 0 fails its hash check \(its pages are corrupt\)$/;
        await assert.rejects(reader.readChunk(0), invalid(why));
        await assert.rejects(
          reader.forEachPage(() => undefined),
          invalid(why),
        );
        await assert.rejects(
          reader.verify(),
          invalid(/^verify found 1 problem\(s\): chunk 0 fails/),
        );
      } finally {
        await reader.close();
      }
    },
  ));

test("a flipped bit in a compressed chunk is caught before any page is visited", async () => {
  const t = await tempStore();
  try {
    const listing = await writeSmall(t.store, "small");
    const reader0 = await CheckpointReader.open(t.store, "small");
    const compressed = [...Array(reader0.chunks.count).keys()]
      .map((c) => reader0.chunks.entry(c))
      .find((e) => e.codec !== 0);
    await reader0.close();
    assert.ok(compressed !== undefined, "the small checkpoint has a compressed chunk");
    await flipBit(
      listing.dir,
      FileName.pack,
      compressed.offset + Math.floor(compressed.storedBytes / 2),
    );
    const reader = await CheckpointReader.open(t.store, "small");
    try {
      let visited = 0;
      await assert.rejects(
        reader.forEachPage((_b, _p, data) => void (data !== null && visited++)),
        invalid(/^chunk \d+ (fails its hash check|does not decompress)/),
      );
      assert.equal(visited, 0);
    } finally {
      await reader.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("a flipped bit in a chunk stored raw (incompressible) fails its hash check", async () => {
  const t = await tempStore();
  try {
    const rand = prng(11);
    const w = await beginCheckpoint(t.store, {
      name: "small",
      vm: {},
      qemu: {},
      stream: { configuration: new Uint8Array(0) },
    });
    w.setRamBlocks([{ name: "ram", lengthBytes: 65 * PAGE_SIZE_BYTES }]);
    for (let p = 0; p < 64; p++) await w.putPage(0, p, randomBytes(rand, PAGE_SIZE_BYTES));
    await w.putPage(0, 64, textPage(1));
    w.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
    const listing = await w.commit();
    await flipBit(listing.dir, FileName.pack, 16 + 3 * PAGE_SIZE_BYTES + 9);
    const reader = await CheckpointReader.open(t.store, "small");
    try {
      assert.deepEqual(
        [reader.chunks.entry(0).codec, reader.chunks.entry(1).codec],
        [CodecId.none, CodecId.zstd],
      );
      await assert.rejects(reader.readChunk(0), invalid(/^chunk 0 fails its hash check/));
      assert.equal((await reader.readChunk(1)).length, 1, "the other chunk still reads");
    } finally {
      await reader.close();
    }
  } finally {
    await t.cleanup();
  }
});

test("a changed device state fails its hash check when read", () =>
  withCorrupted(
    (dir) => flipBit(dir, FileName.device, -1),
    async (store) => {
      const reader = await CheckpointReader.open(store, "small");
      try {
        const why = /^device state hash mismatch: "device\.bin" was modified or corrupted$/;
        await assert.rejects(reader.deviceState(), invalid(why));
        await assert.rejects(reader.verify(), invalid(/device state hash mismatch/));
      } finally {
        await reader.close();
      }
    },
  ));

test("a device file swapped for one of the same size is caught by its hash", () =>
  withCorrupted(
    async (dir) => {
      const path = join(dir, FileName.device);
      await writeFile(path, Buffer.alloc((await readFile(path)).byteLength));
    },
    async (store) => {
      const reader = await CheckpointReader.open(store, "small");
      await assert.rejects(reader.deviceState(), invalid(/^device state hash mismatch/));
      await reader.close();
    },
  ));

test("an absent checkpoint is NotFoundError", async () => {
  const t = await tempStore();
  try {
    await assert.rejects(CheckpointReader.open(t.store, "nope"), NotFoundError);
  } finally {
    await t.cleanup();
  }
});

test("the small checkpoint reads back as written", async () => {
  const t = await tempStore();
  try {
    await writeSmall(t.store);
    const reader = await CheckpointReader.open(t.store, "small");
    assert.deepEqual(reader.pageKind(0, 13), { kind: "zero", fill: 0xaa });
    assert.deepEqual(reader.pageKind(0, 15), { kind: "zero", fill: 0 });
    assert.deepEqual(reader.pageKind(0, 10), reader.pageKind(0, 11));
    assert.deepEqual(reader.stream().configuration, Uint8Array.of(1, 2, 3));
    const device = await reader.deviceState();
    assert.equal(Buffer.from(device.sections).toString(), "sections!");
    assert.equal(Buffer.from(device.vmdescription ?? []).toString(), "{}");
    const report = await reader.verify();
    assert.equal(report.chunks, reader.chunks.count);
    await reader.close();
  } finally {
    await t.cleanup();
  }
});
