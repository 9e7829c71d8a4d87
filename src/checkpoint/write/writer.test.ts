import assert from "node:assert/strict";
import { test } from "node:test";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { CheckpointReader } from "../read/reader.ts";
import type { CheckpointStore } from "../store/store.ts";
import { prng, randomBytes, tempStore, textPage } from "../test-support.ts";
import { beginCheckpoint } from "./writer.ts";

type Expected = { data: Uint8Array } | { fill: number };

interface Plan {
  blocks: { name: string; lengthBytes: number }[];
  final: Map<string, Expected>;
  overwrites: number;
  received: number;
  device: { sections: Uint8Array; vmdescription: Uint8Array | null };
}

/** Writes a random checkpoint (duplicates, zero pages, overwrites, unsent pages) and its model. */
async function writeRandom(store: CheckpointStore, seed: number): Promise<Plan> {
  const rand = prng(seed);
  const blocks = Array.from({ length: 1 + Math.floor(rand() * 3) }, (_, i) => ({
    name: `block${i}`,
    lengthBytes: (1 + Math.floor(rand() * 200)) * PAGE_SIZE_BYTES,
  }));
  const pool = Array.from({ length: 20 }, (_, i) =>
    i % 2 === 0 ? textPage(i) : randomBytes(rand, PAGE_SIZE_BYTES),
  );
  const w = await beginCheckpoint(store, {
    name: `random-${seed}`,
    vm: { seed },
    qemu: { version: "test" },
    stream: { configuration: randomBytes(rand, 37), ram: { sectionId: seed } },
  });
  w.setRamBlocks(blocks);
  const plan: Plan = {
    blocks,
    final: new Map(),
    overwrites: 0,
    received: 0,
    device: randomDevice(rand),
  };
  const operations = blocks.reduce((n, b) => n + b.lengthBytes / PAGE_SIZE_BYTES, 0) * 1.5;
  for (let op = 0; op < operations; op++) {
    const b = Math.floor(rand() * blocks.length);
    const p = Math.floor(rand() * ((blocks[b]?.lengthBytes ?? 0) / PAGE_SIZE_BYTES));
    const key = `${b}/${p}`;
    if (plan.final.has(key)) plan.overwrites++;
    plan.received++;
    const r = rand();
    if (r < 0.15) {
      const fill = rand() < 0.5 ? 0 : Math.floor(rand() * 256);
      w.putZero(b, p, fill);
      plan.final.set(key, { fill });
    } else {
      const data =
        r < 0.5
          ? (pool[Math.floor(rand() * pool.length)] as Uint8Array)
          : randomBytes(rand, PAGE_SIZE_BYTES);
      // The writer must copy: the view is reused (and scribbled on) after the call.
      const view = Buffer.from(data);
      await w.putPage(b, p, view);
      view.fill(0xee);
      plan.final.set(key, data.every((x) => x === 0) ? { fill: 0 } : { data });
    }
  }
  w.setDeviceState(plan.device);
  await w.commit();
  return plan;
}

function randomDevice(rand: () => number): Plan["device"] {
  const vmdescription = rand() < 0.5 ? null : randomBytes(rand, 100);
  return { sections: randomBytes(rand, 1 + Math.floor(rand() * 5000)), vmdescription };
}

function expectedPage(plan: Plan, b: number, p: number): Expected {
  return plan.final.get(`${b}/${p}`) ?? { fill: 0 }; // never sent: zero
}

for (const seed of [1, 2, 3, 4, 5]) {
  test(`round trip of a random checkpoint returns the last version of every page (seed ${seed})`, async () => {
    const t = await tempStore();
    try {
      const plan = await writeRandom(t.store, seed);
      const reader = await CheckpointReader.open(t.store, `random-${seed}`);
      try {
        const seen = new Set<string>();
        await reader.forEachPage((b, p, data, fill) => {
          const key = `${b}/${p}`;
          assert.ok(!seen.has(key), `page ${key} visited once`);
          seen.add(key);
          const want = expectedPage(plan, b, p);
          if ("data" in want)
            assert.deepEqual(Buffer.from(data ?? []), Buffer.from(want.data), key);
          else assert.deepEqual([data, fill], [null, want.fill], key);
        });
        const total = plan.blocks.reduce((n, b) => n + b.lengthBytes / PAGE_SIZE_BYTES, 0);
        assert.equal(seen.size, total);
        await checkRandomAccess(reader, plan);
        const device = await reader.deviceState();
        assert.deepEqual(Buffer.from(device.sections), Buffer.from(plan.device.sections));
        assert.deepEqual(
          device.vmdescription && Buffer.from(device.vmdescription),
          plan.device.vmdescription && Buffer.from(plan.device.vmdescription),
        );
        const stats = reader.manifest.statistics;
        assert.equal(stats.pagesStale, plan.overwrites);
        assert.equal(stats.pagesReceived, plan.received);
        assert.equal(stats.pagesUnsent, total - plan.final.size);
        assert.deepEqual(reader.manifest.vm, { seed });
        assert.deepEqual(reader.stream().ram, { sectionId: seed });
        await reader.verify();
      } finally {
        await reader.close();
      }
    } finally {
      await t.cleanup();
    }
  });
}

/** pageKind + readChunk (the lazy-restore path) agree with the model for every page. */
async function checkRandomAccess(reader: CheckpointReader, plan: Plan): Promise<void> {
  const chunks = new Map<number, Uint8Array[]>();
  for (const [b, block] of plan.blocks.entries()) {
    for (let p = 0; p < block.lengthBytes / PAGE_SIZE_BYTES; p++) {
      const want = expectedPage(plan, b, p);
      const got = reader.pageKind(b, p);
      if (!("data" in want)) {
        assert.deepEqual(got, { kind: "zero", fill: want.fill });
        continue;
      }
      assert.equal(got.kind, "stored");
      if (got.kind !== "stored") continue;
      const pages = chunks.get(got.chunk) ?? (await reader.readChunk(got.chunk));
      chunks.set(got.chunk, pages);
      assert.deepEqual(Buffer.from(pages[got.slot] ?? []), Buffer.from(want.data));
    }
  }
}

test("N identical pages are stored once", async () => {
  const t = await tempStore();
  try {
    const w = await beginCheckpoint(t.store, {
      name: "dup",
      vm: {},
      qemu: {},
      stream: { configuration: new Uint8Array(0) },
    });
    w.setRamBlocks([{ name: "ram", lengthBytes: 300 * PAGE_SIZE_BYTES }]);
    for (let p = 0; p < 300; p++) await w.putPage(0, p, textPage(42));
    w.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
    await w.commit();
    const reader = await CheckpointReader.open(t.store, "dup");
    const s = reader.manifest.statistics;
    assert.deepEqual(
      [s.pagesUnique, s.pagesDuplicate, s.pagesStored, reader.chunks.count],
      [1, 299, 300, 1],
    );
    for (let p = 0; p < 300; p++)
      assert.deepEqual(reader.pageKind(0, p), { kind: "stored", chunk: 0, slot: 0 });
    await reader.close();
  } finally {
    await t.cleanup();
  }
});

test("the last version of a page wins, zero or not", async () => {
  const t = await tempStore();
  try {
    const w = await beginCheckpoint(t.store, {
      name: "last",
      vm: {},
      qemu: {},
      stream: { configuration: new Uint8Array(0) },
    });
    w.setRamBlocks([{ name: "ram", lengthBytes: 3 * PAGE_SIZE_BYTES }]);
    await w.putPage(0, 0, textPage(1));
    w.putZero(0, 0, 7); // page 0: data, then zero 7
    w.putZero(0, 1, 0);
    await w.putPage(0, 1, textPage(2)); // page 1: zero, then data
    await w.putPage(0, 2, textPage(3));
    await w.putPage(0, 2, new Uint8Array(PAGE_SIZE_BYTES)); // page 2: data, then all-zero data
    w.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
    await w.commit();
    const reader = await CheckpointReader.open(t.store, "last");
    assert.deepEqual(reader.pageKind(0, 0), { kind: "zero", fill: 7 });
    assert.deepEqual(reader.pageKind(0, 2), { kind: "zero", fill: 0 });
    const at = reader.pageKind(0, 1);
    assert.ok(at.kind === "stored");
    assert.deepEqual(
      Buffer.from((await reader.readChunk(at.chunk))[at.slot] ?? []),
      Buffer.from(textPage(2)),
    );
    const s = reader.manifest.statistics;
    assert.deepEqual([s.pagesStale, s.pagesUnique, s.slotsUnreferenced], [3, 3, 2]);
    await reader.close();
  } finally {
    await t.cleanup();
  }
});

test("records keep stream order while earlier batches are still being hashed", async () => {
  const t = await tempStore();
  try {
    const pages = 64 * 6;
    const w = await beginCheckpoint(t.store, {
      name: "order",
      vm: {},
      qemu: {},
      stream: { configuration: new Uint8Array(0) },
    });
    w.setRamBlocks([{ name: "ram", lengthBytes: pages * PAGE_SIZE_BYTES }]);
    // No await between the rounds unless told to wait: the first round's batches are in flight
    // while the second round's records for the same pages arrive.
    for (let p = 0; p < pages; p++) await w.putPage(0, p, textPage(p));
    for (let p = 0; p < pages; p++) {
      if (p % 3 === 0) w.putZero(0, p, 5);
      if (p % 3 === 1) await w.putPage(0, p, textPage(p + 1000));
    }
    w.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
    await w.commit();
    const reader = await CheckpointReader.open(t.store, "order");
    const seen = new Map<number, Buffer | null>();
    await reader.forEachPage((_b, p, data) => {
      seen.set(p, data === null ? null : Buffer.from(data));
    });
    for (let p = 0; p < pages; p++) {
      if (p % 3 === 0)
        assert.deepEqual(reader.pageKind(0, p), { kind: "zero", fill: 5 }, `page ${p}`);
      else
        assert.deepEqual(
          seen.get(p),
          Buffer.from(textPage(p % 3 === 1 ? p + 1000 : p)),
          `page ${p}`,
        );
    }
    await reader.close();
  } finally {
    await t.cleanup();
  }
});

test("many incompressible chunks go through both pack buffers with backpressure", async () => {
  const t = await tempStore();
  try {
    const rand = prng(99);
    const pages = 64 * 40; // 40 raw chunks = 10 MiB: many buffer swaps
    const w = await beginCheckpoint(t.store, {
      name: "big",
      vm: {},
      qemu: {},
      stream: { configuration: new Uint8Array(0) },
    });
    w.setRamBlocks([{ name: "ram", lengthBytes: pages * PAGE_SIZE_BYTES }]);
    let waits = 0;
    for (let p = 0; p < pages; p++) {
      const wait = w.putPage(0, p, randomBytes(rand, PAGE_SIZE_BYTES));
      if (wait) {
        waits++;
        await wait;
      }
    }
    w.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
    const listing = await w.commit();
    assert.ok(listing.bytes > pages * PAGE_SIZE_BYTES, "random pages are stored raw");
    const reader = await CheckpointReader.open(t.store, "big");
    const replay = prng(99);
    const byPage = new Map<number, Uint8Array>();
    await reader.forEachPage((_b, p, data) => {
      byPage.set(p, Buffer.from(data ?? []));
    });
    for (let p = 0; p < pages; p++)
      assert.deepEqual(byPage.get(p), Buffer.from(randomBytes(replay, PAGE_SIZE_BYTES)));
    assert.equal(reader.chunks.count, 40);
    assert.ok(waits >= 0);
    await reader.close();
  } finally {
    await t.cleanup();
  }
});
