/**
 * `snapwake profile` and `snapwake save --continue`: working sets by memory tracing (VEE'11).
 * Both serve a lazy restore in the foreground until its fill is done (pure demand paging until
 * the trace settles, at most --seconds; exactly --seconds with --fixed), then keep the traced
 * working set beside the checkpoint (`snapwake restore` then defaults to partial with it) and
 * rewrite the checkpoint with that working set packed first (locality layout). `snapwake
 * relayout` does the rewrite alone, with the working set already kept.
 */
import type { RelayoutResult } from "../../checkpoint/index.ts";
import {
  profile,
  relayoutByWorkingSet,
  saveAndContinue,
  type TraceWindowChoice,
  type TraceWindowReport,
} from "../../restore/index.ts";
import type { Context } from "../context.ts";
import type { Run } from "./index.ts";
import type { Parsed } from "./parse.ts";

/** --seconds N (the window's bound, or its length with --fixed). */
function traceChoice(p: Parsed): TraceWindowChoice {
  const text = p.str("seconds");
  return {
    ...(text === undefined ? {} : { seconds: Number(text) }),
    fixed: p.flag("fixed"),
  };
}

function windowLine(w: TraceWindowReport | null): string {
  if (w === null) return "the whole trace";
  const s = (w.closedAtMs / 1000).toFixed(1);
  switch (w.end) {
    case "settled":
      return `a ${s} s window (closed when no new pages came)`;
    case "bound":
      return w.fixed
        ? `a fixed ${s} s window`
        : `a ${s} s window (its bound: new pages still came; raise --seconds)`;
    case "filled":
      return `a ${s} s window (every page was requested)`;
    case "failed":
      return `a ${s} s window (cut short)`;
    default:
      throw new Error(`unreachable window end ${String(w.end satisfies never)}`);
  }
}

export const runProfile: Run = async (ctx, p) => {
  const vmName = p.str("name");
  const r = await profile({
    home: ctx.home,
    checkpoint: p.arg(0),
    ...traceChoice(p),
    ...(vmName === undefined ? {} : { vmName }),
  });
  const out = {
    checkpoint: p.arg(0),
    tracedPages: r.tracedPages,
    windowMs: r.window === null ? null : Math.round(r.window.closedAtMs),
    windowEnd: r.window?.end ?? null,
    workingSetPages: r.workingSet.pages.length,
    source: r.workingSet.source,
    file: r.file,
    lazyRequests: r.fill.lazyRequests,
    ...relayoutFigures(r.relayout),
  };
  ctx.result(
    out,
    `profiled "${p.arg(0)}": ${r.tracedPages} pages requested in ${windowLine(r.window)}; ` +
      `working set now ${out.workingSetPages} pages (${out.source}) in ${r.file}; ` +
      relayoutLine(r.relayout),
  );
};

/** `save VM --name C --continue [--seconds N] [--fixed]`, called by the save command. */
export async function saveContinue(
  ctx: Context,
  p: Parsed,
  vm: string,
  name: string,
  parent: { readonly parent?: string | null; readonly wholeStore: boolean },
): Promise<void> {
  const r = await saveAndContinue({
    home: ctx.home,
    vm,
    name,
    ...parent,
    trace: traceChoice(p),
    onProgress: (x) => ctx.progress(x),
    signal: ctx.signal,
  });
  ctx.done();
  process.stderr.write(
    `saved "${name}"; VM "${vm}" continues as a lazy restore of it, demand-paged and traced ` +
      "until no new pages come (this command serves its pages until the fill is done)\n",
  );
  const learned = await r.learned;
  ctx.result(
    {
      checkpoint: r.saved.checkpoint,
      vm,
      tracedPages: learned.tracedPages,
      windowMs: learned.window === null ? null : Math.round(learned.window.closedAtMs),
      windowEnd: learned.window?.end ?? null,
      workingSetPages: learned.workingSet.pages.length,
      file: learned.file,
      ...relayoutFigures(learned.relayout),
    },
    `working set of "${name}": ${learned.workingSet.pages.length} pages ` +
      `(${learned.tracedPages} traced in ${windowLine(learned.window)}); ` +
      relayoutLine(learned.relayout),
  );
}

export const runRelayout: Run = async (ctx, p) => {
  const { source, relayout } = await relayoutByWorkingSet({
    home: ctx.home,
    checkpoint: p.arg(0),
  });
  ctx.result(
    { checkpoint: p.arg(0), source, ...relayoutFigures(relayout) },
    `relaid out "${p.arg(0)}" by its ${source} working set: ${relayoutLine(relayout)}`,
  );
};

function relayoutFigures(r: RelayoutResult) {
  return {
    layoutWorkingSetPages: r.workingSetPages,
    chunksBefore: r.chunksBefore,
    chunksAfter: r.chunksAfter,
    prefetchPagesBefore: r.prefetchPagesBefore,
    prefetchPagesAfter: r.prefetchPagesAfter,
    relayoutMs: r.ms,
  };
}

function relayoutLine(r: RelayoutResult): string {
  return (
    `the working set's ${r.workingSetPages} stored pages now sit in ${r.chunksAfter} chunk(s) ` +
    `(${r.prefetchPagesAfter} pages to prefetch), before ${r.chunksBefore} ` +
    `(${r.prefetchPagesBefore} pages)`
  );
}
