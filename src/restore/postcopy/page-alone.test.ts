import assert from "node:assert/strict";
import { test } from "node:test";
import { FileName } from "../../checkpoint/format/format.ts";
import { CheckpointReader, CodecId, PageDigests } from "../../checkpoint/index.ts";
import { setStoreReadThrottle } from "../../checkpoint/read/read-throttle.ts";
import {
  flipBit,
  prng,
  randomBytes,
  tempStore,
  textPage,
  writePages,
} from "../../checkpoint/test-support.ts";
import { InvalidCheckpointError } from "../../errors.ts";
import { PAGE_SIZE_BYTES, RESTORE_SLOW_ALONE_READS_MAX } from "../../limits.ts";
import { PageAlone } from "./page-alone.ts";
import { SyncReads } from "./sync-reads.ts";

const RAW_CHUNKS = 3; // random pages: stored raw
const TEXT_CHUNKS = 2; // text pages: stored zstd

/** A checkpoint of raw chunks then zstd chunks; `flip`: a bit of that pack offset flipped. */
async function withReader(
  body: (reader: CheckpointReader, digests: PageDigests) => Promise<void>,
  flip: (reader: CheckpointReader) => number | null = () => null,
): Promise<void> {
  const t = await tempStore();
  try {
    const rand = prng(7);
    const listing = await writePages(t.store, "c", (RAW_CHUNKS + TEXT_CHUNKS) * 64, (p) =>
      p < RAW_CHUNKS * 64 ? randomBytes(rand, PAGE_SIZE_BYTES) : textPage(p),
    );
    const probe = await CheckpointReader.open(t.store, "c");
    const at = flip(probe);
    await probe.close();
    if (at !== null) await flipBit(listing.dir, FileName.pack, at);
    const reader = await CheckpointReader.open(t.store, "c");
    try {
      await body(reader, await PageDigests.load(reader, t.home));
    } finally {
      await reader.close();
    }
  } finally {
    await t.cleanup();
  }
}

async function decoded(reader: CheckpointReader, chunk: number): Promise<Uint8Array[]> {
  return reader.decodeChunk(chunk, await reader.readStoredChunk(chunk));
}

test("a raw chunk's page is read alone and equals the reader's; others are not", async () => {
  await withReader(async (reader, digests) => {
    const codecs = Array.from({ length: reader.chunks.count }, (_, c) => reader.chunks.entry(c));
    assert.deepEqual(
      codecs.map((e) => e.codec),
      [CodecId.none, CodecId.none, CodecId.none, CodecId.zstd, CodecId.zstd],
    );
    const reads = new SyncReads();
    const alone = new PageAlone(reader, reads);
    assert.equal(alone.read(1, 0), null, "no digests yet: nothing is read alone");
    alone.useDigests(digests);
    for (const [chunk, slot] of [
      [0, 0],
      [1, 17],
      [2, 63],
    ] as const) {
      const page = alone.read(chunk, slot);
      assert.ok(page !== null, `chunk ${chunk} slot ${slot} read alone`);
      const want = (await decoded(reader, chunk))[slot] ?? [];
      assert.deepEqual(Buffer.from(page), Buffer.from(want));
    }
    assert.equal(alone.read(3, 5), null, "a compressed chunk is loaded whole");
    assert.equal(alone.read(1, 64), null, "past the chunk's pages");
    setStoreReadThrottle("200,5");
    try {
      assert.equal(alone.read(1, 5), null, "under the emulated slow store reads stay async");
    } finally {
      setStoreReadThrottle(undefined);
    }
    reads.close();
    assert.equal(alone.read(1, 5), null, "closed: no read");
  });
});

test("a page read alone that does not match its digest is never given", async () => {
  const slot = 10;
  await withReader(
    async (reader, digests) => {
      const alone = new PageAlone(reader);
      alone.useDigests(digests);
      assert.equal(alone.read(1, slot), null, "the corrupt page is refused");
      assert.ok(alone.read(1, slot + 1) !== null, "its neighbours match");
      // The request then waits for its chunk's load, which fails naming the chunk.
      await assert.rejects(
        decoded(reader, 1),
        (error: unknown) =>
          error instanceof InvalidCheckpointError &&
          /^chunk 1 fails its hash check/.test(error.reason),
      );
    },
    (reader) => reader.chunks.entry(1).offset + slot * PAGE_SIZE_BYTES + 99,
  );
});

test("after a few slow reads in a row pages are no longer read alone", async () => {
  await withReader(async (reader, digests) => {
    let t = 0;
    let stepMs = 3;
    const reads = new SyncReads({ now: () => (t += stepMs) }); // a read takes 2 steps
    const alone = new PageAlone(reader, reads);
    alone.useDigests(digests);
    for (let i = 1; i < RESTORE_SLOW_ALONE_READS_MAX; i++) assert.ok(alone.read(0, i) !== null);
    stepMs = 0.1; // one fast read: the slow ones before it were the host, not the store
    assert.ok(alone.read(0, 0) !== null);
    assert.equal(reads.open, true);
    stepMs = 3;
    for (let i = 0; i < RESTORE_SLOW_ALONE_READS_MAX; i++) assert.ok(alone.read(0, i) !== null);
    assert.equal(reads.open, false);
    assert.equal(alone.read(0, 9), null);
  });
});
