/**
 * FillReport: what a lazy or partial restore did, VEE'11's table and more. Built once, when
 * the fill has finished (QEMU reported the migration completed).
 */
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import type { AccessedBitsResetReport } from "../../wss/index.ts";
import type { ChunkCacheStats } from "./chunk-cache.ts";
import type { TraceWindowReport } from "./demand-window.ts";
import type { FillOrder } from "./fill-order.ts";
import type { PageServerStats } from "./page-server-deps.ts";
import type { Placement } from "./placement.ts";
import type { PreludeCounts } from "./prelude.ts";
import type { LatencySummary, TraceRecord } from "./trace.ts";

export type PostcopyMode = "lazy" | "partial";

export interface FillReport {
  readonly mode: PostcopyMode;
  /** Pages sent before the guest ran (the working set, after the package; stored and zero). */
  readonly pagesPrefetched: number;
  readonly zeroPagesPrefetched: number;
  /** Distinct pages the restoring QEMU asked for (the paper's "pages restored lazily"). */
  readonly lazyRequests: number;
  /** Request messages, repeats included. */
  readonly requests: number;
  /** Requests for pages already placed or in flight: traced with inFlight, not answered. */
  readonly requestsIgnored: number;
  /** Requests for zero pages that arrived after RAM END (QEMU maps them as zero pages). */
  readonly requestsAfterEnd: number;
  /** Stored pages sent because they were requested. */
  readonly pagesServedOnRequest: number;
  /** Zero pages sent (as ZERO records) because they were requested. */
  readonly zeroPagesAnswered: number;
  /**
   * Of pagesServedOnRequest, those whose chunk was not decoded yet when the request came: they
   * waited for a chunk read, decompression and hash check. The others were answered in the
   * tick the request was read.
   */
  readonly requestsWaitedForChunk: number;
  /**
   * Of requestsWaitedForChunk, those answered once their own page matched its trusted digest,
   * before the rest of its chunk was hashed (ADR 0019).
   */
  readonly requestsAnsweredPageFirst: number;
  /**
   * Of the requests answered at once, those whose chunk was not decoded yet: their page was
   * read alone from the store and matched its trusted digest (ADR 0020).
   */
  readonly requestsReadAlone: number;
  /** Pages sent without a request: locality pushes plus background fill. */
  readonly pagesPushed: number;
  /** The other pages of a requested page's chunk (Halite locality blocks). */
  readonly pagesPushedForLocality: number;
  readonly pagesPushedInBackground: number;
  /** Page records written, precopy and postcopy. Equal to pagesPlaced: nothing went twice. */
  readonly pagesSent: number;
  /** Pages marked placed, recounted from the placement flags. */
  readonly pagesPlaced: number;
  /** Pages the checkpoint stores, and how many of them were placed (all, after a fill). */
  readonly storedPages: number;
  readonly storedPagesPlaced: number;
  /** Request received → its page handed to the socket. */
  readonly serviceLatency: LatencySummary;
  /**
   * Stored (compressed) bytes read from the pack (whole chunks and pages read alone), and page
   * bytes decompressed.
   */
  readonly packBytesRead: number;
  readonly bytesDecompressed: number;
  readonly chunkCacheHits: number;
  readonly chunkCacheMisses: number;
  /** From the restore's start: the prelude handed to QEMU (the package with RUN, then the
   *  working set; the guest is released right after), last page handed to the socket (full
   *  fill), QEMU reporting the migration completed. */
  readonly runMs: number;
  readonly timeToFullFillMs: number;
  readonly timeToCompletedMs: number;
  /** Every request in arrival order, up to RESTORE_TRACE_REQUESTS_MAX; traceDropped more. */
  readonly trace: readonly TraceRecord[];
  readonly traceDropped: number;
  /**
   * The demand-only trace window of a profiling restore (when it closed and why), or null:
   * every request with tMs ≤ closedAtMs saw a page nothing had pushed.
   */
  readonly traceWindow: TraceWindowReport | null;
  /** Page-table pages sent with their Accessed bits cleared (docs/accessed-bits.md). */
  readonly accessedBits: AccessedBitsResetReport;
  /** Where the restore record (this report and its trace) was written; null if not asked. */
  readonly recordPath: string | null;
}

export interface ReportInput {
  readonly mode: PostcopyMode;
  readonly prelude: PreludeCounts;
  readonly server: PageServerStats;
  readonly latency: LatencySummary;
  readonly trace: readonly TraceRecord[];
  readonly traceDropped: number;
  readonly cache: ChunkCacheStats;
  readonly placement: Placement;
  readonly order: FillOrder;
  readonly runMs: number;
  readonly timeToFullFillMs: number;
  readonly timeToCompletedMs: number;
  readonly traceWindow: TraceWindowReport | null;
  readonly accessedBits: AccessedBitsResetReport;
}

export function buildFillReport(r: ReportInput): FillReport {
  let storedPagesPlaced = 0;
  for (let c = 0; c < r.order.chunkCount; c++)
    for (const g of r.order.pagesOf(c)) if (r.placement.isSent(g)) storedPagesPlaced++;
  const s = r.server;
  return {
    mode: r.mode,
    pagesPrefetched: r.prelude.pagesPrefetched,
    zeroPagesPrefetched: r.prelude.zeroPagesPrefetched,
    lazyRequests: s.distinctPagesRequested,
    requests: s.requests,
    requestsIgnored: s.requestsIgnored,
    requestsAfterEnd: s.requestsAfterEnd,
    pagesServedOnRequest: s.servedOnRequest,
    zeroPagesAnswered: s.zeroPagesAnswered,
    requestsWaitedForChunk: s.waitedForChunk,
    requestsAnsweredPageFirst: s.answeredPageFirst,
    requestsReadAlone: s.readAlone,
    pagesPushed: s.pushedForLocality + s.pushedInBackground,
    pagesPushedForLocality: s.pushedForLocality,
    pagesPushedInBackground: s.pushedInBackground,
    pagesSent: r.prelude.pagesPrefetched + s.pagesSent,
    pagesPlaced: r.placement.countSent(),
    storedPages: r.order.storedPages,
    storedPagesPlaced,
    serviceLatency: r.latency,
    packBytesRead: r.cache.bytesRead + s.readAlone * PAGE_SIZE_BYTES,
    bytesDecompressed: r.cache.bytesDecompressed,
    chunkCacheHits: r.cache.hits,
    chunkCacheMisses: r.cache.misses,
    runMs: r.runMs,
    timeToFullFillMs: r.timeToFullFillMs,
    timeToCompletedMs: r.timeToCompletedMs,
    trace: r.trace,
    traceDropped: r.traceDropped,
    traceWindow: r.traceWindow,
    accessedBits: r.accessedBits,
    recordPath: null,
  };
}
