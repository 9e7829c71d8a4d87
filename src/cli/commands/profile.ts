/**
 * `snapwake profile` and `snapwake save --continue`: working sets by memory tracing (VEE'11).
 * Both serve a lazy restore in the foreground until its fill is done, then keep the traced
 * working set beside the checkpoint (`snapwake restore` then defaults to partial with it) and
 * rewrite the checkpoint with that working set packed first (locality layout). `snapwake
 * relayout` does the rewrite alone, with the working set already kept.
 */
import {
  CheckpointStore,
  type RelayoutResult,
  relayoutCheckpoint,
} from "../../checkpoint/index.ts";
import { UsageError } from "../../errors.ts";
import { profile, saveAndContinue } from "../../restore/index.ts";
import { loadWorkingSet } from "../../wss/index.ts";
import type { Context } from "../context.ts";
import type { Run } from "./index.ts";
import type { Parsed } from "./parse.ts";

const DEFAULT_TRACE_SECONDS = 5;

function seconds(p: Parsed): number {
  const text = p.str("seconds");
  return text === undefined ? DEFAULT_TRACE_SECONDS : Number(text);
}

export const runProfile: Run = async (ctx, p) => {
  const vmName = p.str("name");
  const r = await profile({
    home: ctx.home,
    checkpoint: p.arg(0),
    seconds: seconds(p),
    ...(vmName === undefined ? {} : { vmName }),
  });
  const out = {
    checkpoint: p.arg(0),
    tracedPages: r.tracedPages,
    workingSetPages: r.workingSet.pages.length,
    source: r.workingSet.source,
    file: r.file,
    lazyRequests: r.fill.lazyRequests,
    ...relayoutFigures(r.relayout),
  };
  ctx.result(
    out,
    `profiled "${p.arg(0)}": ${r.tracedPages} pages requested in the first ${seconds(p)} s; ` +
      `working set now ${out.workingSetPages} pages (${out.source}) in ${r.file}; ` +
      relayoutLine(r.relayout),
  );
};

/** `save VM --name C --continue [--seconds N]`, called by the save command. */
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
    traceSeconds: seconds(p),
    onProgress: (x) => ctx.progress(x),
  });
  ctx.done();
  process.stderr.write(
    `saved "${name}"; VM "${vm}" continues as a lazy restore of it, traced for ${seconds(p)} s ` +
      "(this command serves its pages until the fill is done)\n",
  );
  const learned = await r.learned;
  ctx.result(
    {
      checkpoint: r.saved.checkpoint,
      vm,
      tracedPages: learned.tracedPages,
      workingSetPages: learned.workingSet.pages.length,
      file: learned.file,
      ...relayoutFigures(learned.relayout),
    },
    `working set of "${name}": ${learned.workingSet.pages.length} pages ` +
      `(${learned.tracedPages} traced); ${relayoutLine(learned.relayout)}`,
  );
}

export const runRelayout: Run = async (ctx, p) => {
  const ws = await loadWorkingSet(ctx.home, p.arg(0));
  if (ws === null) {
    throw new UsageError(
      `Checkpoint "${p.arg(0)}" has no working set to lay out by: profile it first`,
    );
  }
  const store = new CheckpointStore({ home: ctx.home });
  const r = await relayoutCheckpoint(store, p.arg(0), ws.pages, { source: ws.source });
  ctx.result(
    { checkpoint: p.arg(0), source: ws.source, ...relayoutFigures(r) },
    `relaid out "${p.arg(0)}" by its ${ws.source} working set: ${relayoutLine(r)}`,
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
