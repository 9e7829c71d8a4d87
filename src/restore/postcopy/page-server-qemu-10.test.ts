/**
 * The page server against what a real QEMU 10.0 destination asked for: the return paths of the
 * 10.0 captures (test/fixtures/qemu-10.0: plain postcopy, and postcopy-preempt with 833
 * requests), fed at many chunk splits through readReturnPath, the loop a lazy restore runs. The
 * checkpoint is built from the capture: every page's content as the migration left it. While a
 * demand-only window is open only answers go out, so what is written then must be exactly the
 * requested pages, each once, with the content QEMU's own source sent for them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { PageLocation } from "../../checkpoint/index.ts";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import {
  MigrationStreamWriter,
  ReturnPathReader,
  readMigrationStream,
  readPreemptChannel,
} from "../../qemu/migration/index.ts";
import { walkPostcopyStream } from "../../qemu/migration/test-postcopy-walk.ts";
import {
  chunked,
  type FinalPage,
  fixture,
  MemoryVisitor,
} from "../../qemu/migration/test-support.ts";
import { ChunkCache } from "./chunk-cache.ts";
import { FillOrder } from "./fill-order.ts";
import { PageServer } from "./page-server.ts";
import type { DemandOnlyWindow } from "./page-server-deps.ts";
import { Placement } from "./placement.ts";
import { readReturnPath } from "./return-path-loop.ts";

const SLOTS = 8;
const LIMIT = { timeout: 120_000 };
const SPLITS = [1, 2, 3, 7, 13, 4096, Number.MAX_SAFE_INTEGER];

/** A checkpoint of a capture's final memory: data pages stored 8 to a chunk, the rest zero. */
interface CapturedCheckpoint {
  readonly blocks: readonly { name: string; lengthBytes: number; pageCount: number }[];
  readonly chunks: { readonly count: number };
  pageKind(block: number, page: number): PageLocation;
  readStoredChunk(): Promise<Uint8Array>;
  decodeChunk(chunk: number): Uint8Array[];
  /** The page as the migration left it (a fill byte for a zero page). */
  finalPage(block: number, page: number): FinalPage;
}

async function checkpointOf(prefix: "pc-postcopy" | "pc-preempt"): Promise<CapturedCheckpoint> {
  const precopy = new MemoryVisitor();
  const postcopy = new MemoryVisitor();
  await walkPostcopyStream(
    chunked(fixture(`${prefix}.src2dst.bin`, "10.0"), 65536),
    precopy,
    postcopy,
  );
  if (prefix === "pc-preempt") {
    const preempt = fixture("pc-preempt.preempt.bin", "10.0");
    await readPreemptChannel(chunked(preempt, 65536), postcopy.blocks, postcopy);
  }
  const finals = precopy.pages.map((pages, b) => new Map([...pages, ...(postcopy.pages[b] ?? [])]));
  const kinds = new Map<string, PageLocation>();
  const chunkPages: Uint8Array[][] = [];
  finals.forEach((pages, b) => {
    for (const [p, page] of [...pages].sort((x, y) => x[0] - y[0])) {
      if (typeof page === "number") {
        kinds.set(`${b}:${p}`, { kind: "zero", fill: page });
        continue;
      }
      let last = chunkPages.at(-1);
      if (last === undefined || last.length === SLOTS) {
        last = [];
        chunkPages.push(last);
      }
      kinds.set(`${b}:${p}`, { kind: "stored", chunk: chunkPages.length - 1, slot: last.length });
      last.push(page);
    }
  });
  return {
    blocks: precopy.blocks.map((b) => ({ ...b, pageCount: b.lengthBytes / PAGE_SIZE_BYTES })),
    chunks: { count: chunkPages.length },
    pageKind: (b, p) => kinds.get(`${b}:${p}`) ?? { kind: "zero", fill: 0 },
    readStoredChunk: async () => new Uint8Array(1),
    decodeChunk: (chunk) => chunkPages[chunk] ?? assert.fail(`no chunk ${chunk}`),
    finalPage: (b, p) => finals[b]?.get(p) ?? 0,
  };
}

/** The page requests of a return path, as "block:page" keys, in order. */
async function requestsOf(returnPath: Uint8Array, names: readonly string[]): Promise<string[]> {
  const keys: string[] = [];
  for await (const m of new ReturnPathReader(chunked(returnPath, returnPath.byteLength))) {
    if (m.kind === "req-pages") {
      keys.push(`${names.indexOf(m.blockName)}:${m.startBytes / PAGE_SIZE_BYTES}`);
    }
  }
  return keys;
}

interface Written {
  readonly key: string;
  readonly page: FinalPage;
}

/** Decodes what the server wrote (a stream from header to EOF) into its records. */
async function recordsOf(out: readonly Uint8Array[]): Promise<Written[]> {
  const records: Written[] = [];
  const input = (async function* () {
    yield* out;
  })();
  await readMigrationStream(input, {
    ramBlocks() {},
    page: (b, p, data) => void records.push({ key: `${b}:${p}`, page: data.slice() }),
    zeroPage: (b, p, fill) => void records.push({ key: `${b}:${p}`, page: fill }),
    deviceState() {},
  });
  return records;
}

/** Lets pending answers (a chunk load) settle, until `done` holds. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setImmediate(resolve));
}

/** One lazy-restore fill fed `returnPath` in chunks of `size` bytes. */
async function serve(source: CapturedCheckpoint, returnPath: Uint8Array, size: number) {
  const placement = new Placement(source.blocks.map((b) => b.pageCount));
  const out: Uint8Array[] = [];
  const writer = new MigrationStreamWriter({
    write: (bytes: Uint8Array) => void out.push(bytes.slice()),
  });
  writer.header();
  writer.ramStart({ sectionId: 2, instanceId: 0, versionId: 4 }, source.blocks);
  const { promise: closed, resolve: close } = Promise.withResolvers<void>();
  let open = true;
  const window: DemandOnlyWindow = { isOpen: () => open, closed, onRequest: () => undefined };
  const server = new PageServer({
    source,
    blockNames: source.blocks.map((b) => b.name),
    placement,
    order: new FillOrder(source, placement),
    cache: new ChunkCache(source, 4),
    writer,
    out: { queuedBytes: 0, whenDrained: () => Promise.resolve() },
    demandOnly: window,
  });
  const input = chunked(returnPath, size);
  const channel = {
    socket: { destroyed: false, [Symbol.asyncIterator]: () => input[Symbol.asyncIterator]() },
    isClosed: () => false,
  };
  const shut = readReturnPath(channel, server); // started before begin(), as lazy.ts does
  server.begin();
  const running = server.run();
  const status = await shut;
  const answered = () => server.stats.servedOnRequest + server.stats.zeroPagesAnswered;
  await until(() => answered() + server.stats.requestsIgnored === server.stats.requests);
  const answerCount = answered();
  open = false;
  close();
  await running;
  const all = await recordsOf(out);
  // While the window was open the server wrote answers only: they are the first records.
  return { status, server, answers: all.slice(0, answerCount), all };
}

for (const [prefix, requestCount] of [
  ["pc-postcopy", 9],
  ["pc-preempt", 833],
] as const) {
  test(
    `10.0 ${prefix} return path: the server answers exactly the requested pages`,
    LIMIT,
    async () => {
      const source = await checkpointOf(prefix);
      const returnPath = fixture(`${prefix}.returnpath.bin`, "10.0");
      const requests = await requestsOf(
        returnPath,
        source.blocks.map((b) => b.name),
      );
      assert.equal(requests.length, requestCount);
      assert.equal(new Set(requests).size, requestCount, "QEMU asked for each page once");
      for (const size of SPLITS) {
        const { status, server, answers, all } = await serve(source, returnPath, size);
        const at = `split ${size}`;
        assert.equal(status, 0, `SHUT(0) after PONG 1, 2, 4, 3 and the requests (${at})`);
        const s = server.stats;
        assert.deepEqual(
          [s.requests, s.distinctPagesRequested, s.requestsIgnored],
          [requestCount, requestCount, 0],
          at,
        );
        assert.equal(answers.length, requestCount, `each request answered once (${at})`);
        assert.deepEqual(answers.map((r) => r.key).sort(), [...requests].sort(), at);
        for (const { key, page } of answers) {
          const [b, p] = key.split(":").map(Number) as [number, number];
          assert.deepEqual(page, source.finalPage(b, p), `the page QEMU's source sent (${at})`);
        }
        const keys = all.map((r) => r.key);
        assert.equal(new Set(keys).size, keys.length, `then the fill, no page twice (${at})`);
        assert.equal(server.remaining, 0, at);
      }
    },
  );
}
