/**
 * Serves guest pages to a restoring QEMU after the postcopy package
 * (docs/migration-protocol.md §6.7 step 8): requested pages first, then the rest of each
 * requested page's chunk (Halite locality), then every remaining non-zero page in pack order,
 * until all are placed; then RAM END and EOF. A demand-only window (profiling) holds back both
 * kinds of push while it is open.
 *
 * A request is answered in the tick it is read if its page is zero, in a cached (verified)
 * chunk, or read alone and checked (ADR 0020); else once its own page (ADR 0019) or its chunk
 * is checked. The background fill, from when the guest runs (ADR 0022), goes in small units
 * between ticks, so it never stands between a request and its answer (ADR 0010).
 *
 * Invariants:
 * - each page is sent at most once (Placement asserts it: EEXIST kills QEMU); a request for a
 *   page already sent is traced and ignored; a pushed batch is picked after its chunk is
 *   ready, from what is unsent then;
 * - a request is never stuck behind much background data: pushed pages go in small RAM PARTs
 *   only while fewer than RESTORE_QUEUED_BYTES_MAX bytes wait in our socket; an answer is
 *   written at once, whatever is queued;
 * - every request gets an answer, a zero page a ZERO record (an unanswered request blocks a
 *   vCPU, and after EOF it would read zeros: silent corruption for a non-zero page, §6.4);
 * - only checked pages are sent: their chunk's hash, or for a request's page its own SHA-256
 *   against a digest list that hashes to it (ChunkCache, its loader and PageAlone check them);
 * - while a demand-only window is open, only requested pages are sent.
 */
import assert from "node:assert/strict";
import {
  PAGE_SIZE_BYTES,
  RESTORE_FILL_READ_AHEAD_CHUNKS,
  RESTORE_LATENCIES_MAX,
  RESTORE_LOCALITY_CHUNKS_MAX,
  RESTORE_PUSH_PAGES_MAX,
  RESTORE_QUEUED_BYTES_MAX,
  RESTORE_READAHEAD_SCAN_CHUNKS,
  RESTORE_REQUESTS_QUEUED_MAX,
  RESTORE_TRACE_REQUESTS_MAX,
} from "../../limits.ts";
import { asError } from "../../util/index.ts";
import type { PageServerDeps, PageServerStats } from "./page-server-deps.ts";
import { badRequest, type PageRequest, RequestQueue, tooManyRequests } from "./request-queue.ts";
import { LatencyRecorder, RequestTrace } from "./trace.ts";

type ChunkPages = Readonly<Record<number, Uint8Array>>; // by slot: all, or those checked early
type Counter = "servedOnRequest" | "zeroPagesAnswered" | "pushedForLocality" | "pushedInBackground";

export class PageServer {
  readonly trace = new RequestTrace(RESTORE_TRACE_REQUESTS_MAX);
  readonly latency = new LatencyRecorder(RESTORE_LATENCIES_MAX);
  readonly #d: PageServerDeps;
  readonly #now: () => number;
  readonly #blockIndex: ReadonlyMap<string, number>;
  readonly #filledZero: ReadonlySet<number>;
  /** Requests that came before begin(), answered by begin(). */
  readonly #early = new RequestQueue();
  /** Requests waiting for their chunk's load, by chunk. */
  readonly #waiting = new Map<number, PageRequest[]>();
  #waitingRequests = 0;
  readonly #locality: { chunk: number; next: number }[] = [];
  #bgAt = 0; // the background fill's position in FillOrder.chunkAt
  #bgNext = 0;
  #filledNext = 0;
  #remaining: number;
  #t0: number;
  /** What the background fill still waits for (deps.backgroundAfter), or null once it may run. */
  #backgroundAfter: Promise<void> | null;
  #begun = false;
  #ended = false;
  #failure: Error | null = null;
  #wake: (() => void) | null = null;
  readonly #n = {
    requests: 0,
    distinctPagesRequested: 0,
    requestsIgnored: 0,
    requestsAfterEnd: 0,
    servedOnRequest: 0,
    zeroPagesAnswered: 0,
    waitedForChunk: 0,
    answeredPageFirst: 0,
    readAlone: 0,
    pushedForLocality: 0,
    pushedInBackground: 0,
    pagesSent: 0,
  };

  constructor(deps: PageServerDeps) {
    this.#d = deps;
    this.#now = deps.now ?? (() => performance.now());
    this.#t0 = this.#now();
    this.#backgroundAfter =
      deps.backgroundAfter?.then(() => {
        this.#backgroundAfter = null;
      }) ?? null;
    this.#blockIndex = new Map(deps.blockNames.map((name, b) => [name, b]));
    this.#filledZero = new Set(deps.order.filledZeroPages);
    this.#remaining = this.#d.order.unsentPages(this.#d.placement);
  }

  get stats(): PageServerStats {
    return { ...this.#n };
  }

  /** Fill pages (non-zero pages) not sent yet. */
  get remaining(): number {
    return this.#remaining;
  }

  /**
   * Call when the package ending in RUN is in the socket: starts the trace clock and counts
   * the fill pages the precopy phase left unsent.
   */
  begin(): void {
    this.#t0 = this.#now();
    this.#remaining = this.#d.order.unsentPages(this.#d.placement);
    this.#begun = true;
    for (let r = this.#early.shift(); r !== undefined; r = this.#early.shift()) this.#answer(r);
  }

  /**
   * A page request from the return path, answered as #answer says; the background fill never
   * stands in between. Before begin() requests are held and answered by begin().
   */
  request(blockName: string, startBytes: number, lengthBytes: number): void {
    const receivedMs = this.#now();
    const block = this.#blockIndex.get(blockName);
    const pages = block === undefined ? 0 : this.#d.placement.pagesOf(block);
    if (block === undefined || lengthBytes !== PAGE_SIZE_BYTES || startBytes % PAGE_SIZE_BYTES) {
      this.fail(
        badRequest(blockName, startBytes, lengthBytes, "not a 4 KiB page of a known block"),
      );
      return;
    }
    const page = startBytes / PAGE_SIZE_BYTES;
    if (page >= pages) {
      this.fail(badRequest(blockName, startBytes, lengthBytes, "past the end of its block"));
      return;
    }
    const g = this.#d.placement.index(block, page);
    const inFlight = this.#d.placement.isSent(g);
    this.trace.record({ block, page, tMs: receivedMs - this.#t0, inFlight });
    this.#n.requests += 1;
    const firstRequest = this.#d.placement.markRequested(g);
    if (firstRequest) this.#n.distinctPagesRequested += 1;
    this.#d.demandOnly?.onRequest(receivedMs - this.#t0, firstRequest);
    if (inFlight) {
      this.#n.requestsIgnored += 1;
    } else if (this.#ended) {
      // Only zero pages can be unsent now; QEMU's cleanup after EOF maps them as zero pages.
      this.#n.requestsAfterEnd += 1;
    } else if (!this.#begun) {
      if (!this.#early.push({ g, block, page, receivedMs })) this.fail(tooManyRequests());
    } else {
      this.#answer({ g, block, page, receivedMs });
    }
  }

  /** Stops the run loop with `error` (the channel closed, QEMU died, a return-path fault). */
  fail(error: Error): void {
    this.#failure ??= error;
    this.#signal();
  }

  /** Fills in the background until every fill page is sent, then writes RAM END and EOF. */
  async run(): Promise<void> {
    assert(this.#begun, "begin() before run()");
    for (;;) {
      this.#throwIfFailed();
      // Only once the guest may run: the stream's end closes the QMP that releases it (ADR 0027).
      if (this.#remaining === 0 && this.#backgroundAfter === null) break;
      if (this.#d.out.queuedBytes > RESTORE_QUEUED_BYTES_MAX) {
        await this.#sleepUntil(this.#d.out.whenDrained());
        continue;
      }
      const window = this.#d.demandOnly;
      if (window?.isOpen() === true) {
        await this.#sleepUntil(window.closed);
        continue;
      }
      if (this.#locality.length > 0) await this.#pushLocality();
      else if (this.#backgroundAfter !== null) await this.#sleepUntil(this.#backgroundAfter);
      else await this.#pushBackground();
      await new Promise<void>((resolve) => setImmediate(resolve)); // let requests in
    }
    this.#ended = true;
    this.#d.writer.beginRamEnd();
    this.#d.writer.endRamSection();
    this.#d.writer.eof();
    await this.#d.writer.flush();
  }

  /** Answers `r` now if its page is zero, cached or read alone, else once it is checked. */
  #answer(r: PageRequest): void {
    if (this.#d.placement.isSent(r.g)) {
      this.#n.requestsIgnored += 1;
      return;
    }
    const where = this.#d.source.pageKind(r.block, r.page);
    if (where.kind === "zero") {
      this.#part([r.g], null, "zeroPagesAnswered");
      this.latency.add(this.#now() - r.receivedMs);
      return;
    }
    const pages = this.#d.cache.peek(where.chunk);
    if (pages !== undefined) {
      this.#serve(r, where.chunk, pages);
      return;
    }
    const alone = this.#d.alone?.read(where.chunk, where.slot) ?? null;
    if (alone !== null) {
      this.#n.readAlone += 1;
      this.#serve(r, where.chunk, { [where.slot]: alone });
      return;
    }
    const waiting = this.#waiting.get(where.chunk);
    if (waiting === undefined && this.#waitingRequests >= RESTORE_REQUESTS_QUEUED_MAX) {
      this.fail(tooManyRequests());
      return;
    }
    this.#waitingRequests += 1;
    if (waiting !== undefined) {
      waiting.push(r);
      return;
    }
    // Listed before the load starts: a chunk loaded here answers it inside get() (ADR 0029).
    this.#waiting.set(where.chunk, [r]);
    const chunk = where.chunk;
    const early = (page: (slot: number) => Uint8Array | null) => this.#answerEarly(chunk, page);
    this.#d.cache.get(chunk, "request", early).then(
      (loaded) => this.#chunkReady(chunk, loaded),
      (error: unknown) => this.fail(asError(error)),
    );
  }

  /** Answers the requests that waited for `chunk`, oldest first. */
  #chunkReady(chunk: number, pages: readonly Uint8Array[]): void {
    const waiting = this.#waiting.get(chunk) ?? [];
    this.#waiting.delete(chunk);
    this.#waitingRequests -= waiting.length;
    if (this.#failure !== null) return;
    for (const r of waiting) {
      if (this.#d.placement.isSent(r.g)) {
        this.#n.requestsIgnored += 1;
      } else {
        this.#n.waitedForChunk += 1;
        this.#serve(r, chunk, pages);
      }
    }
  }

  /** Answers the requests waiting for `chunk` whose pages passed their own check (ADR 0019). */
  #answerEarly(chunk: number, page: (slot: number) => Uint8Array | null): void {
    const waiting = this.#waiting.get(chunk);
    if (waiting === undefined || this.#failure !== null) return;
    const rest = waiting.filter((r) => {
      const where = this.#d.source.pageKind(r.block, r.page);
      if (this.#d.placement.isSent(r.g) || where.kind === "zero") return true; // #chunkReady's
      const data = page(where.slot);
      if (data === null) return true; // it fails its check: the chunk load rejects
      this.#n.waitedForChunk += 1;
      this.#n.answeredPageFirst += 1;
      this.#serve(r, chunk, { [where.slot]: data });
      return false;
    });
    this.#waitingRequests -= waiting.length - rest.length;
    this.#waiting.set(chunk, rest);
  }

  #serve(r: PageRequest, chunk: number, pages: ChunkPages): void {
    this.#part([r.g], pages, "servedOnRequest");
    this.latency.add(this.#now() - r.receivedMs);
    this.#queueLocality(chunk);
    this.#signal(); // the run loop pushes the chunk's other pages next
  }

  /** Newest first: the chunk of the latest request is the likeliest to be touched next. */
  #queueLocality(chunk: number): void {
    if (this.#locality.some((l) => l.chunk === chunk)) return;
    this.#locality.unshift({ chunk, next: 0 });
    if (this.#locality.length > RESTORE_LOCALITY_CHUNKS_MAX) this.#locality.pop();
  }

  /**
   * Pushes the next few unsent pages of a requested page's chunk: the newest one decoded, else
   * the newest (ADR 0020: a decoded chunk passed over could be evicted and read again).
   */
  async #pushLocality(): Promise<void> {
    const { cache } = this.#d;
    const head = this.#locality.find((l) => cache.isReady(l.chunk)) ?? this.#locality[0];
    assert(head !== undefined, "a chunk to push");
    const refs = this.#d.order.pagesOf(head.chunk);
    if (this.#nextUnsent(refs, head.next).pages.length === 0) {
      this.#dropLocality(head);
      return;
    }
    // Ahead of the fill's loads: one of its pages may have been answered alone, unloaded.
    const pages = cache.peek(head.chunk) ?? (await cache.get(head.chunk, "neighbours"));
    this.#throwIfFailed();
    // Requests were answered meanwhile: the batch is picked now, from what is still unsent.
    const batch = this.#nextUnsent(refs, head.next);
    head.next += batch.consumed;
    if (batch.pages.length === 0) this.#dropLocality(head);
    else this.#part(batch.pages, pages, "pushedForLocality");
  }

  #dropLocality(entry: { chunk: number; next: number }): void {
    const at = this.#locality.indexOf(entry);
    if (at >= 0) this.#locality.splice(at, 1);
  }

  /** Pushes the next few unsent non-zero pages in fill order (FillOrder.chunkAt). */
  async #pushBackground(): Promise<void> {
    const filled = this.#d.order.filledZeroPages;
    if (this.#filledNext < filled.length) {
      const batch = this.#nextUnsent(filled, this.#filledNext);
      this.#filledNext += batch.consumed;
      this.#part(batch.pages, null, "pushedInBackground");
      return;
    }
    const { order, cache } = this.#d;
    for (; this.#bgAt < order.chunkCount; this.#bgAt++, this.#bgNext = 0) {
      const chunk = order.chunkAt(this.#bgAt);
      const refs = order.pagesOf(chunk);
      if (this.#nextUnsent(refs, this.#bgNext).pages.length === 0) continue;
      const cached = cache.peek(chunk);
      const loading = cached === undefined ? cache.get(chunk) : null;
      // Once a chunk, before the fill waits: the store keeps reads in flight (ADR 0017).
      if (this.#bgNext === 0) this.#readAheadAfter(this.#bgAt);
      const pages = cached ?? (await loading);
      this.#throwIfFailed();
      // Requests were answered meanwhile: the batch is picked now, from what is still unsent.
      const batch = this.#nextUnsent(refs, this.#bgNext);
      this.#bgNext += batch.consumed;
      if (batch.pages.length > 0) this.#part(batch.pages, pages, "pushedInBackground");
      return;
    }
    assert.fail(`background fill ran out of pages with ${this.#remaining} still unsent`);
  }

  /** Starts loading the next few chunks the fill needs after `at` (not all sent; ADR 0017). */
  #readAheadAfter(at: number): void {
    const { order, placement, cache } = this.#d;
    const end = Math.min(order.chunkCount, at + 1 + RESTORE_READAHEAD_SCAN_CHUNKS);
    let wanted = RESTORE_FILL_READ_AHEAD_CHUNKS;
    for (let i = at + 1; i < end && wanted > 0; i++) {
      const c = order.chunkAt(i);
      if (order.pagesOf(c).some((g) => !placement.isSent(g))) {
        cache.prefetch(c);
        wanted -= 1;
      }
    }
  }

  /** Up to RESTORE_PUSH_PAGES_MAX unsent pages of `refs` from `from` on, and refs looked at. */
  #nextUnsent(refs: Uint32Array, from: number): { pages: number[]; consumed: number } {
    return this.#d.placement.nextUnsent(refs, from, RESTORE_PUSH_PAGES_MAX);
  }

  /** One RAM PART with `gs` (pages of one chunk, or zero pages when `chunkPages` is null). */
  #part(gs: readonly number[], chunkPages: ChunkPages | null, counter: Counter): void {
    const { writer, placement, source } = this.#d;
    writer.beginRamPart();
    for (const g of gs) {
      const { block, page } = placement.locate(g);
      const where = source.pageKind(block, page);
      placement.markSent(g); // asserts: never twice
      if (where.kind === "zero") {
        writer.zeroPage(block, page, where.fill);
        if (this.#filledZero.has(g)) this.#remaining -= 1;
      } else {
        assert(chunkPages !== null, "stored pages come with their chunk");
        const data = chunkPages[where.slot];
        assert(data !== undefined, "the slot is inside its verified chunk");
        writer.page(block, page, data);
        this.#remaining -= 1;
      }
      this.#n[counter] += 1;
      this.#n.pagesSent += 1;
    }
    writer.endRamSection();
    // The sink never blocks: the bytes are in the socket when flush() returns its promise.
    writer.flush().catch((error: unknown) => this.fail(asError(error)));
    this.#d.onSent?.(placement.sentPages);
  }

  #throwIfFailed(): void {
    if (this.#failure !== null) throw this.#failure;
  }

  async #sleepUntil(event: Promise<void>): Promise<void> {
    const woken = new Promise<void>((resolve) => {
      this.#wake = resolve;
    });
    await Promise.race([event, woken]);
    this.#wake = null;
  }

  #signal(): void {
    this.#wake?.();
  }
}
