/**
 * Working sets: the pages a restored guest is expected to touch first, in the order it touched
 * them. Pure functions; storage is in store.ts.
 *
 * Invariants: a working set holds each (block, page) once, ordered by first access; it never
 * exceeds WORKING_SET_PAGES_MAX pages.
 */
import { WORKING_SET_BROAD_SHARE, WORKING_SET_PAGES_MAX } from "../limits.ts";

/** Where a working set came from (VEE'11's two estimators, and their refinement). */
export type WorkingSetSource = "trace" | "write-set" | "union" | "accessed-bits";

export interface WorkingSetPage {
  readonly block: number;
  readonly page: number;
  /** First access, ms after the guest resumed (0 for estimators without times). */
  readonly firstMs: number;
}

export interface WorkingSet {
  readonly source: WorkingSetSource;
  readonly pages: readonly WorkingSetPage[];
  /** Estimators: how many guest pages the set was chosen from (see isBroad). */
  readonly ofPages?: number;
}

/** A set that holds most of the memory it was chosen from: no prediction, only a prefetch. */
export function isBroad(ws: WorkingSet): boolean {
  return isBroadCount(ws.pages.length, ws.ofPages);
}

/** isBroad from the counts alone (a working-set file's header has them). */
export function isBroadCount(pageCount: number, ofPages: number | undefined): boolean {
  return ofPages !== undefined && pageCount > WORKING_SET_BROAD_SHARE * ofPages;
}

/** One traced page request of a lazy restore. */
export interface TraceEntry {
  readonly block: number;
  readonly page: number;
  readonly tMs: number;
}

/** The pages a lazy restore requested, first request of each page only, in time order. */
export function workingSetFromTrace(
  trace: readonly TraceEntry[],
  maxPages = WORKING_SET_PAGES_MAX,
): WorkingSet {
  return {
    source: "trace",
    pages: firstAccesses(
      trace.map((t) => ({ ...t, firstMs: t.tMs })),
      maxPages,
    ),
  };
}

/** Pages QEMU re-sent during a live save were written recently: a working set without times. */
export function workingSetFromWrites(
  pages: readonly { block: number; page: number }[],
  maxPages = WORKING_SET_PAGES_MAX,
): WorkingSet {
  return {
    source: "write-set",
    pages: firstAccesses(
      pages.map((p) => ({ ...p, firstMs: 0 })),
      maxPages,
    ),
  };
}

/**
 * REAP-style refinement: the union of a kept working set and a new one, each page at its
 * earliest first access, bounded to maxPages (the earliest-touched pages win).
 */
export function refineWorkingSet(
  kept: WorkingSet,
  next: WorkingSet,
  maxPages = WORKING_SET_PAGES_MAX,
): WorkingSet {
  const merged = [...kept.pages, ...next.pages].sort((a, b) => a.firstMs - b.firstMs);
  return { source: "union", pages: firstAccesses(merged, maxPages) };
}

function firstAccesses(pages: readonly WorkingSetPage[], maxPages: number): WorkingSetPage[] {
  const seen = new Set<string>();
  const out: WorkingSetPage[] = [];
  for (const p of pages) {
    const key = `${p.block}:${p.page}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
    if (out.length >= maxPages) break;
  }
  return out;
}
