/**
 * `snapwake save`: checkpoint a managed VM. `--continue` (profile.ts) brings the restore code
 * along, so it is loaded only then: a plain save loads the save path alone.
 */
import { UsageError } from "../../errors.ts";
import {
  type AccessedBitsOutcome,
  AFTER_SAVE,
  DEFAULT_AFTER_SAVE,
  defaultCheckpointName,
  save,
} from "../../save/index.ts";
import type { Run } from "./index.ts";
import { choice } from "./parse.ts";

const MIB = 2 ** 20;

export const runSave: Run = async (ctx, p) => {
  const vm = p.arg(0);
  if (p.flag("full") && p.str("parent") !== undefined)
    throw new UsageError("--parent and --full exclude each other");
  const parent = {
    ...(p.flag("full") ? { parent: null } : parentOption(p.str("parent"))),
    wholeStore: p.flag("share-store"),
  };
  const name = p.str("name") ?? defaultCheckpointName(vm);
  if (p.flag("continue")) {
    if (p.str("after") !== undefined)
      throw new UsageError("--continue and --after exclude each other");
    const { saveContinue } = await import("./profile.ts");
    await saveContinue(ctx, p, vm, name, parent);
    return;
  }
  if (p.str("seconds") !== undefined || p.flag("fixed"))
    throw new UsageError("--seconds and --fixed shape the trace of --continue: add --continue");
  const after = choice(p.str("after"), AFTER_SAVE, DEFAULT_AFTER_SAVE, "--after");
  const result = await save({
    home: ctx.home,
    vm,
    name,
    after,
    live: !p.flag("stop-first"),
    accessedBits: !p.flag("no-accessed-bits"),
    spool: !p.flag("no-spool"),
    ...parent,
    onProgress: (x) => ctx.progress(x),
    signal: ctx.signal,
  });
  ctx.done();
  const c = result.checkpoint;
  const human = [
    `saved "${c.name}" from VM "${vm}" in ${(result.wallMs / 1000).toFixed(2)} s`,
    `  stream ${(result.streamBytes / MIB).toFixed(1)} MiB from QEMU → ` +
      `checkpoint ${(c.bytes / MIB).toFixed(1)} MiB` +
      (result.parent === null ? " (full)" : ` (incremental from "${result.parent}")`),
    result.live
      ? "  live: the guest ran during the save"
      : "  paused: the guest was paused for the save",
    ...(result.pausedBecause === null ? [] : [`  note: ${result.pausedBecause}`]),
    ...(result.resumedMs === null
      ? []
      : [
          `  the guest ran again ${(result.resumedMs / 1000).toFixed(2)} s into the save, ` +
            "while snapwake wrote and checked the checkpoint",
        ]),
    ...accessedBitsLines(result.accessedBits),
  ].join("\n");
  ctx.result(result, human);
};

/** `--parent X` → { parent: X }; absent → {} (the VM's origin, if any). */
function parentOption(parent: string | undefined): { parent?: string } {
  return parent === undefined ? {} : { parent };
}

/** The accessed-bit working set the save kept (or why not). */
function accessedBitsLines(a: AccessedBitsOutcome | null): string[] {
  if (a === null) return [];
  if (a.kind === "failed") return [`  accessed-bit working set: none (${a.reason})`];
  return [
    `  accessed-bit working set: ${a.pages} pages, ${a.tables} page-table pages ` +
      `(${(a.ms / 1000).toFixed(2)} s)`,
  ];
}
