/**
 * `snapwake ls | inspect | rm | gc`: the checkpoint catalogue. The restore records (and the
 * restore code behind them) are loaded only by `inspect --restores`.
 */
import {
  CheckpointReader,
  CheckpointStore,
  describeCheckpoint,
  formatCheckpoint,
} from "../../checkpoint/index.ts";
import { keptImage } from "../../restore/ram-image.ts";
import { summarizeWorkingSets, type WorkingSetSummary } from "../../wss/index.ts";
import type { Context } from "../context.ts";
import type { Run } from "./index.ts";

const MIB = 2 ** 20;

export const runLs: Run = async (ctx) => {
  const list = await new CheckpointStore({ home: ctx.home }).list();
  const rows = list.map(
    (c) =>
      `${c.name.padEnd(32)} ${(c.bytes / MIB).toFixed(1).padStart(9)} MiB  ${c.createdAt}  ` +
      (c.parent ?? "-"),
  );
  ctx.result(
    list,
    list.length === 0
      ? "no checkpoints"
      : [
          `${"NAME".padEnd(32)} ${"SIZE".padStart(13)}  ${"CREATED".padEnd(24)}  PARENT`,
          ...rows,
        ].join("\n"),
  );
};

export const runInspect: Run = async (ctx, p) => {
  if (p.flag("restores")) return inspectRestores(ctx, p.arg(0));
  const reader = await CheckpointReader.open(new CheckpointStore({ home: ctx.home }), p.arg(0));
  try {
    const desc = describeCheckpoint(reader);
    const verified = p.flag("verify") ? await reader.verify() : null;
    const workingSets = await summarizeWorkingSets(ctx.home, p.arg(0));
    const ramImage = await keptImage(ctx.home, p.arg(0), reader.manifest);
    const human =
      formatCheckpoint(desc) +
      formatWorkingSets(workingSets) +
      formatImage(ramImage) +
      (verified === null ? "" : "\nverify: every chunk and the device state match their hashes");
    const json = { ...desc, workingSets, ramImage };
    ctx.result(verified === null ? json : { ...json, verify: verified }, human);
  } finally {
    await reader.close();
  }
};

const WORKING_SET_SOURCE_TEXT: Readonly<Record<WorkingSetSummary["source"], string>> = {
  union: "traced, refined over restores",
  trace: "traced by profile or save --continue",
  "accessed-bits": "page-table Accessed bits at the save",
  "write-set": "pages the guest wrote during a live save",
};

function formatWorkingSets(list: readonly WorkingSetSummary[]): string {
  if (list.length === 0) return "\nworking sets: none (profile it, or save with accessed bits)";
  const rows = list.map(
    (w) =>
      `  ${w.source.padEnd(14)} ${String(w.pages).padStart(9)} pages  ` +
      `${WORKING_SET_SOURCE_TEXT[w.source]}${w.preferred ? " (auto picks this)" : ""}` +
      `${w.broad ? " (most of memory: auto skips it)" : ""}`,
  );
  return `\nworking sets:\n${rows.join("\n")}`;
}

function formatImage(image: Awaited<ReturnType<typeof keptImage>>): string {
  if (image === null) return "\nRAM image: none (the first `restore --mode mapped` builds it)";
  const mib = (image.diskBytes / MIB).toFixed(1);
  return `\nRAM image: kept for mapped restores, ${mib} MiB on disk, last checked ${image.usedAt}`;
}

export const runRm: Run = async (ctx, p) => {
  const report = await new CheckpointStore({ home: ctx.home }).remove(p.arg(0));
  const mib = (b: number) => `${(b / MIB).toFixed(1)} MiB`;
  const kept =
    report.sharedBytes === 0
      ? ""
      : `; ${mib(report.sharedBytes)} of packs stays, shared with other checkpoints`;
  ctx.result(
    { removed: p.arg(0), ...report },
    `removed "${p.arg(0)}": freed ${mib(report.freedBytes)}${kept}`,
  );
};

export const runGc: Run = async (ctx) => {
  const removed = await new CheckpointStore({ home: ctx.home }).cleanTemp();
  ctx.result({ removedTemp: removed }, `removed ${removed} abandoned temporary item(s)`);
};

async function inspectRestores(ctx: Context, checkpoint: string): Promise<void> {
  await new CheckpointStore({ home: ctx.home }).stat(checkpoint);
  const { listRestoreRecords } = await import("../../restore/index.ts");
  const { restores, unreadable } = await listRestoreRecords(ctx.home, checkpoint);
  const rows = restores.map(({ record: r }) => {
    const f = r.report;
    const figures =
      f === null
        ? `failed: ${r.error?.message ?? "unknown"}`
        : `prefetched ${f.pagesPrefetched}, lazy ${f.lazyRequests}, pushed ${f.pagesPushed}, ` +
          `p50/p99 ${f.serviceLatency.p50Ms.toFixed(2)}/${f.serviceLatency.p99Ms.toFixed(2)} ms, ` +
          `full fill ${(f.timeToFullFillMs / 1000).toFixed(2)} s`;
    return `${r.startedAt}  ${r.vm}  ${r.mode}  ${figures}`;
  });
  const human = [
    restores.length === 0 ? `no lazy or partial restores of "${checkpoint}" yet` : rows.join("\n"),
    ...unreadable.map((f) => `unreadable record: ${f}`),
  ].join("\n");
  ctx.result({ checkpoint, restores, unreadable }, human);
}
