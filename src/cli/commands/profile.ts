/**
 * `snapwake profile` and `snapwake save --continue`: working sets by memory tracing (VEE'11).
 * Both serve a lazy restore in the foreground until its fill is done, then keep the traced
 * working set beside the checkpoint (`snapwake restore` then defaults to partial with it).
 */
import { profile, saveAndContinue } from "../../restore/index.ts";
import type { Context } from "../context.ts";
import type { Command } from "./index.ts";
import { type Parsed, parse } from "./parse.ts";

const DEFAULT_TRACE_SECONDS = 5;

function seconds(p: Parsed): number {
  const text = p.str("seconds");
  return text === undefined ? DEFAULT_TRACE_SECONDS : Number(text);
}

export const profileCommand: Command = {
  usage:
    "CHECKPOINT [--seconds N]   traced lazy restore of a throw-away clone; its first N s of " +
    "page requests become the checkpoint's working set",
  async run(ctx, args) {
    const p = parse(args, { seconds: { type: "string" }, name: { type: "string" } }, [
      "checkpoint",
    ]);
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
    };
    ctx.result(
      out,
      `profiled "${p.arg(0)}": ${r.tracedPages} pages requested in the first ${seconds(p)} s; ` +
        `working set now ${out.workingSetPages} pages (${out.source}) in ${r.file}`,
    );
  },
};

/** `save VM --name C --continue [--seconds N]`, called by the save command. */
export async function saveContinue(
  ctx: Context,
  p: Parsed,
  vm: string,
  name: string,
): Promise<void> {
  const r = await saveAndContinue({
    home: ctx.home,
    vm,
    name,
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
    },
    `working set of "${name}": ${learned.workingSet.pages.length} pages (${learned.tracedPages} traced)`,
  );
}
