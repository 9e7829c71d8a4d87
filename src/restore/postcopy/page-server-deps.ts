/**
 * What the page server (page-server.ts) is given and what it reports: its dependencies, the
 * socket queue and demand-only window it consults, and its counters.
 */
import type { MigrationStreamWriter } from "../../qemu/migration/index.ts";
import type { ChunkCache } from "./chunk-cache.ts";
import type { FillOrder, PageKinds } from "./fill-order.ts";
import type { PageAlone } from "./page-alone.ts";
import type { Placement } from "./placement.ts";

/** The socket as the server sees it: how much is queued, and a wait for it to drain. */
export interface OutQueue {
  readonly queuedBytes: number;
  /** Resolves once the queue has drained (or is below the high-water mark) or has closed. */
  whenDrained(): Promise<void>;
}

/**
 * A span of pure demand paging at the start of the fill, for profiling: while it is open the
 * server sends only requested pages, so the request trace sees every page the guest touches.
 */
export interface DemandOnlyWindow {
  /** True while open; once false, false for good. */
  isOpen(): boolean;
  /** Resolves when the window closes. */
  readonly closed: Promise<void>;
  /** Told of every request: ms since begin(), and whether it is its page's first request. */
  onRequest(tMs: number, firstRequest: boolean): void;
}

export interface PageServerDeps {
  readonly source: PageKinds;
  readonly blockNames: readonly string[];
  readonly placement: Placement;
  readonly order: FillOrder;
  readonly cache: ChunkCache;
  /** Reads a requested page alone when its chunk is not decoded yet (ADR 0020). Default: none. */
  readonly alone?: Pick<PageAlone, "read">;
  /** Writes to the socket without waiting; `out` is how the server limits what is queued. */
  readonly writer: MigrationStreamWriter;
  readonly out: OutQueue;
  /**
   * The background fill starts once this resolves (requests and their locality pushes are
   * served from the start; it must not reject). Default: at once. A restore passes the guest
   * running (ADR 0022), plus any delay it was asked for.
   */
  readonly backgroundAfter?: Promise<void>;
  /** While open, no locality push and no background fill: requests only. Default: none. */
  readonly demandOnly?: DemandOnlyWindow;
  /** Called after each page sent (progress reports). */
  readonly onSent?: (placed: number) => void;
  readonly now?: () => number;
}

/** What the server did; FillReport is built from it. */
export interface PageServerStats {
  readonly requests: number;
  readonly distinctPagesRequested: number;
  readonly requestsIgnored: number;
  readonly requestsAfterEnd: number;
  readonly servedOnRequest: number;
  readonly zeroPagesAnswered: number;
  /** Requests answered after waiting for their chunk's load (the rest: at once). */
  readonly waitedForChunk: number;
  /** Of waitedForChunk, those answered once their own page was checked (ADR 0019). */
  readonly answeredPageFirst: number;
  /** Requests answered at once from their page read alone and checked (ADR 0020). */
  readonly readAlone: number;
  readonly pushedForLocality: number;
  readonly pushedInBackground: number;
  readonly pagesSent: number;
}
