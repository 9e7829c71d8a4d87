/**
 * The page server against an in-memory stream: what it writes is read back with the stream
 * reader, so the order of records, the final image and "never twice" are checked on the bytes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { PageLocation } from "../../checkpoint/index.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { MigrationStreamWriter, readMigrationStream } from "../../qemu/migration/index.ts";
import { ChunkCache, type ChunkLoader } from "./chunk-cache.ts";
import { FillOrder } from "./fill-order.ts";
import { PageServer } from "./page-server.ts";
import type { DemandOnlyWindow, PageServerDeps } from "./page-server-deps.ts";
import { Placement } from "./placement.ts";

const BLOCKS = [
  { name: "pc.ram", lengthBytes: 40 * PAGE_SIZE_BYTES, pageCount: 40 },
  { name: "pc.rom", lengthBytes: 3 * PAGE_SIZE_BYTES, pageCount: 3 },
];
const RAM = { sectionId: 2, instanceId: 0, versionId: 4 };
/** A server that never finishes fails the test instead of hanging it. */
const LIMIT = { timeout: 10_000 };

/** Every 5th page is zero (page 10 of pc.ram with fill 7); others stored 8 to a chunk. */
function fakeCheckpoint() {
  const kinds: PageLocation[][] = [];
  let next = 0;
  for (const b of BLOCKS) {
    kinds.push(
      Array.from({ length: b.pageCount }, (_, p): PageLocation => {
        if (p % 5 === 0) return { kind: "zero", fill: b.name === "pc.ram" && p === 10 ? 7 : 0 };
        const at = next++;
        return { kind: "stored", chunk: Math.floor(at / 8), slot: at % 8 };
      }),
    );
  }
  const chunkCount = Math.ceil(next / 8);
  const contentOf = (chunk: number, slot: number) =>
    new Uint8Array(PAGE_SIZE_BYTES).fill((chunk * 8 + slot) % 251);
  return {
    blocks: BLOCKS,
    chunks: { count: chunkCount },
    pageKind: (b: number, p: number): PageLocation => {
      const k = kinds[b]?.[p];
      assert(k !== undefined);
      return k;
    },
    readStoredChunk: async (_chunk: number) => new Uint8Array(1),
    decodeChunk: (chunk: number) => Array.from({ length: 8 }, (_, s) => contentOf(chunk, s)),
    contentOf,
  };
}

function setUp(
  demandOnly?: DemandOnlyWindow,
  alone?: PageServerDeps["alone"],
  backgroundAfter?: Promise<void>,
  loadOffThread?: ChunkLoader["loadOffThread"],
) {
  const source = fakeCheckpoint();
  const placement = new Placement(BLOCKS.map((b) => b.pageCount));
  const order = new FillOrder(source, placement);
  const out: Uint8Array[] = [];
  const writer = new MigrationStreamWriter({
    write: (bytes: Uint8Array) => void out.push(bytes.slice()),
  });
  writer.header();
  writer.ramStart(RAM, BLOCKS);
  const server = new PageServer({
    source,
    blockNames: BLOCKS.map((b) => b.name),
    placement,
    order,
    cache: new ChunkCache(loadOffThread === undefined ? source : { ...source, loadOffThread }, 4),
    writer,
    out: { queuedBytes: 0, whenDrained: () => Promise.resolve() },
    ...(demandOnly === undefined ? {} : { demandOnly }),
    ...(alone === undefined ? {} : { alone }),
    ...(backgroundAfter === undefined ? {} : { backgroundAfter }),
  });
  return { source, placement, order, server, out };
}

async function readBack(out: readonly Uint8Array[]) {
  const records: { block: number; page: number; fill: number | null; data: Uint8Array | null }[] =
    [];
  await readMigrationStream(
    (async function* () {
      yield* out;
    })(),
    {
      ramBlocks() {},
      page: (block, page, data) =>
        void records.push({ block, page, fill: null, data: data.slice() }),
      zeroPage: (block, page, fill) => void records.push({ block, page, fill, data: null }),
      deviceState() {},
    },
  );
  return records;
}

test(
  "requests are answered first (a zero page at once, a stored one when its chunk is ready), " +
    "every non-zero page goes exactly once, then END and EOF",
  LIMIT,
  async () => {
    const { source, placement, order, server, out } = setUp();
    server.begin();
    server.request("pc.ram", 33 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES); // stored
    server.request("pc.ram", 20 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES); // zero, fill 0
    await server.run();
    const records = await readBack(out);
    assert.deepEqual([records[0]?.block, records[0]?.page], [0, 20], "answered in request()");
    const firstStored = records.find((r) => r.data !== null);
    assert.deepEqual([firstStored?.block, firstStored?.page], [0, 33], "before any push");
    const keys = records.map((r) => `${r.block}:${r.page}`);
    assert.equal(new Set(keys).size, keys.length, "no page twice");
    assert.equal(placement.countSent(), records.length);
    for (const r of records) {
      const where = source.pageKind(r.block, r.page);
      if (where.kind === "zero") assert.equal(r.fill, where.fill);
      else assert.deepEqual(r.data, source.contentOf(where.chunk, where.slot));
    }
    const zeroSent = records.filter((r) => r.fill !== null).map((r) => `${r.block}:${r.page}`);
    assert.deepEqual(zeroSent.sort(), ["0:10", "0:20"], "fill-0 zero pages only when asked");
    assert.equal(records.length, order.storedPages + 2);
    const s = server.stats;
    assert.deepEqual([s.requests, s.servedOnRequest, s.zeroPagesAnswered], [2, 1, 1]);
    assert.equal(s.pushedForLocality + s.pushedInBackground + 2, records.length);
    assert.ok(s.pushedForLocality > 0, "the requested page's chunk was pushed next");
    assert.equal(server.remaining, 0);
  },
);

test(
  "the background fill takes the chunks put first, then the rest in pack order",
  LIMIT,
  async () => {
    const { source, order, server, out } = setUp();
    order.putFirst([3, 1, 3, 99]); // a repeat and a chunk out of range are skipped
    server.begin();
    await server.run();
    const chunks: number[] = [];
    for (const r of await readBack(out)) {
      const where = source.pageKind(r.block, r.page);
      if (where.kind === "stored" && chunks.at(-1) !== where.chunk) chunks.push(where.chunk);
    }
    assert.equal(order.chunkCount, 5, "34 stored pages, 8 to a chunk");
    assert.deepEqual(chunks, [3, 1, 0, 2, 4]);
  },
);

test(
  "a request for a page already sent is traced as in flight and not answered",
  LIMIT,
  async () => {
    const { placement, server } = setUp();
    placement.markSent(placement.index(1, 1)); // as if sent in precopy
    server.begin();
    server.request("pc.rom", PAGE_SIZE_BYTES, PAGE_SIZE_BYTES);
    assert.deepEqual(server.trace.records[0]?.inFlight, true);
    await server.run();
    assert.equal(server.stats.requestsIgnored, 1);
    assert.equal(server.stats.servedOnRequest, 0);
  },
);

test("a malformed request or fail() stops the run with the reason", LIMIT, async () => {
  for (const [block, start, length, why] of [
    ["nope", 0, PAGE_SIZE_BYTES, /not a 4 KiB page of a known block/],
    ["pc.rom", 3 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES, /past the end of its block/],
    ["pc.ram", 0, 2 * PAGE_SIZE_BYTES, /not a 4 KiB page/],
  ] as const) {
    const { server } = setUp();
    server.begin();
    server.request(block, start, length);
    await assert.rejects(server.run(), why);
  }
  const { server } = setUp();
  server.begin();
  server.fail(new Error("channel closed"));
  await assert.rejects(server.run(), /channel closed/);
});

test(
  "while a demand-only window is open only requested pages go; then the fill completes",
  LIMIT,
  async () => {
    const { promise: closed, resolve: close } = Promise.withResolvers<void>();
    let open = true;
    let sentAtCheck = -1; // pages sent when the run loop last looked at the window
    const seen: [number, boolean][] = [];
    const window: DemandOnlyWindow = {
      isOpen: () => {
        sentAtCheck = server.stats.pagesSent;
        return open;
      },
      closed,
      onRequest: (tMs, first) => void seen.push([tMs >= 0 ? 1 : 0, first]),
    };
    const { order, server, out } = setUp(window);
    const poll = () => new Promise((resolve) => setTimeout(resolve, 1));
    server.begin();
    server.request("pc.ram", 33 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES);
    server.request("pc.ram", 20 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES);
    const running = server.run();
    let ended = false;
    void running.then(
      () => (ended = true),
      () => (ended = true),
    );
    while (server.stats.pagesSent < 2) await poll();
    server.request("pc.ram", 33 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES); // in flight: ignored
    server.request("pc.rom", PAGE_SIZE_BYTES, PAGE_SIZE_BYTES);
    // The run loop wakes after each served request and looks at the window before pushing
    // anything. Once it has looked since the last page went out (and nothing went since), it
    // is asleep on `closed`: what it sent so far is all it sends while the window is open. A
    // loop that pushed anyway keeps sending (or ends the fill), and the stats below show it.
    while (!ended && !(server.stats.pagesSent >= 3 && sentAtCheck === server.stats.pagesSent))
      await poll();
    const s = server.stats;
    assert.deepEqual(
      [s.servedOnRequest, s.zeroPagesAnswered, s.pushedForLocality, s.pushedInBackground],
      [2, 1, 0, 0],
      "nothing unasked while the window is open",
    );
    assert.deepEqual(seen, [
      [1, true],
      [1, true],
      [1, false],
      [1, true],
    ]);
    open = false;
    close();
    await running;
    const records = await readBack(out);
    assert.deepEqual(
      records
        .slice(0, 3)
        .map((r) => `${r.block}:${r.page}`)
        .sort(),
      ["0:20", "0:33", "1:1"],
    );
    assert.equal(records.length, order.storedPages + 2, "then every page, once");
    assert.equal(server.remaining, 0);
  },
);

test(
  "a page read alone answers its request at once; its chunk's others follow",
  LIMIT,
  async () => {
    const aloneChunk = 3;
    const contentOf = fakeCheckpoint().contentOf;
    const reads: number[] = [];
    const { source, order, server, out } = setUp(undefined, {
      read: (chunk, slot) => {
        reads.push(chunk);
        return chunk === aloneChunk ? contentOf(chunk, slot) : null;
      },
    });
    // Stored pages 24..31 (chunk 3) are RAM pages 30..39 less the zero pages 30 and 35.
    const where = source.pageKind(0, 33);
    assert.deepEqual(where, { kind: "stored", chunk: aloneChunk, slot: 2 });
    server.begin();
    server.request("pc.ram", 33 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES);
    assert.equal(server.stats.readAlone, 1, "answered in request(), before any chunk load");
    assert.equal(server.stats.servedOnRequest, 1);
    server.request("pc.ram", 1 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES); // chunk 0: not read alone
    await server.run();
    const s = server.stats;
    assert.deepEqual(reads, [aloneChunk, 0]);
    assert.deepEqual([s.readAlone, s.waitedForChunk], [1, 1]);
    assert.ok(s.pushedForLocality > 0, "the chunk's other pages were pushed after the answer");
    const records = await readBack(out);
    assert.deepEqual([records[0]?.block, records[0]?.page], [0, 33]);
    assert.deepEqual(records[0]?.data, contentOf(aloneChunk, 2));
    const keys = records.map((r) => `${r.block}:${r.page}`);
    assert.equal(new Set(keys).size, keys.length, "no page twice");
    assert.equal(records.length, order.storedPages + 1);
  },
);

test("a chunk loaded and checked inside the request's get() answers it there", LIMIT, async () => {
  const contentOf = fakeCheckpoint().contentOf;
  const loads: string[] = [];
  const { server, out } = setUp(undefined, undefined, undefined, (chunk, urgency, early) => {
    loads.push(`${chunk}:${urgency}`);
    const pages = Array.from({ length: 8 }, (_, s) => contentOf(chunk, s));
    early?.((slot) => pages[slot] ?? null); // as a chunk read and decoded here does (ADR 0029)
    return Promise.resolve({ pages, storedBytes: 1 });
  });
  server.begin();
  server.request("pc.ram", 33 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES);
  assert.deepEqual(loads, ["3:request"]);
  assert.deepEqual([server.stats.servedOnRequest, server.stats.answeredPageFirst], [1, 1]);
  await server.run();
  const records = await readBack(out);
  assert.deepEqual([records[0]?.block, records[0]?.page], [0, 33]);
  assert.deepEqual(records[0]?.data, contentOf(3, 2));
  const keys = records.map((r) => `${r.block}:${r.page}`);
  assert.equal(new Set(keys).size, keys.length, "no page twice");
});

test(
  "with nothing left after the prelude the stream still ends only after backgroundAfter",
  LIMIT,
  async () => {
    const guestRuns = Promise.withResolvers<void>();
    const { server, placement, order, out } = setUp(undefined, undefined, guestRuns.promise);
    for (let c = 0; c < order.chunkCount; c++)
      for (const g of order.pagesOf(c)) placement.markSent(g);
    for (const g of order.filledZeroPages) placement.markSent(g);
    server.begin();
    let ended = false;
    const done = server.run().then(() => {
      ended = true;
    });
    for (let i = 0; i < 50; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(ended, false, "no RAM END while the guest has not been released");
    guestRuns.resolve();
    await done;
    assert.equal((await readBack(out)).length, 0, "END and EOF only: every page went before");
  },
);

test("the background fill waits for backgroundAfter; requests do not", LIMIT, async () => {
  const guestRuns = Promise.withResolvers<void>();
  const { server, order, out } = setUp(undefined, undefined, guestRuns.promise);
  server.begin();
  const done = server.run();
  server.request("pc.ram", 33 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES);
  // Many loop turns: the request's chunk loads and its neighbours go, but no background page.
  for (let i = 0; i < 50; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(server.stats.servedOnRequest, 1);
  assert.ok(server.stats.pushedForLocality > 0, "locality pushes are not held back");
  assert.equal(server.stats.pushedInBackground, 0, "no background page before the guest runs");
  guestRuns.resolve();
  await done;
  assert.ok(server.stats.pushedInBackground > 0);
  const records = await readBack(out);
  assert.equal(records.length, order.storedPages + 1, "every page once, then END and EOF");
});

test(
  "a request answered while the fill waits for the same chunk is not sent again by the fill",
  LIMIT,
  async () => {
    const { source, placement, server, out } = setUp();
    const gate = Promise.withResolvers<void>(); // chunk 0 loads once the test says
    const asked = Promise.withResolvers<void>(); // the fill asked for chunk 0
    const read = source.readStoredChunk;
    source.readStoredChunk = async (chunk: number) => {
      if (chunk === 0) {
        asked.resolve();
        await gate.promise;
      }
      return read(chunk);
    };
    server.begin();
    const ran = server.run(); // the fill sends the filled zero page, then waits for chunk 0
    await asked.promise;
    server.request("pc.ram", 1 * PAGE_SIZE_BYTES, PAGE_SIZE_BYTES); // in chunk 0: waits too
    gate.resolve(); // both go on in one tick: the fill's batch is picked when it is sent
    await ran;
    const keys = (await readBack(out)).map((r) => `${r.block}:${r.page}`);
    assert.equal(new Set(keys).size, keys.length, "no page twice");
    assert.equal(placement.countSent(), keys.length);
    assert.equal(server.stats.servedOnRequest + server.stats.requestsIgnored, 1);
  },
);
