/**
 * One side-by-side run: the same booted test guest saved by QEMU's own `migrate` to a file and
 * by snapwake, then restored by QEMU's own `-incoming` and by snapwake's eager, lazy and mapped
 * restores (the first mapped restore builds the RAM image, the second maps the kept one), each
 * from settled host memory. Only ratios measured within one run mean anything on shared
 * machines.
 */
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { killVm, stopVm } from "../../src/vm/index.ts";
import { bootTestGuest, connectAgent, testGuestSpec } from "../../test/support/test-guest.ts";
import { qemuRestore, qemuSave } from "./qemu-baseline.ts";
import { SETTLE_MS_DEFAULT } from "./restore-bench.ts";

export interface CompareOptions {
  readonly home: string;
  /** Where QEMU's own stream file goes. */
  readonly workDir: string;
  readonly memoryMiB: number;
  /** Anonymous memory the guest workload fills. */
  readonly memMiB: number;
  readonly log: (line: string) => void;
}

export interface CompareResult {
  readonly guest: { memoryMiB: number; memMiB: number; dataFilesCached: number };
  readonly qemu: {
    streamBytes: number;
    zstdBytes: number;
    saveMs: number;
    restoreMs: number;
    restoreToPingMs: number;
  };
  readonly snapwake: {
    checkpointBytes: number;
    saveMs: number;
    restoreMs: number;
    restoreToPingMs: number;
    ingestMBps: number;
    dataPages: number;
    zeroPages: number;
    /** A lazy (postcopy) restore of the same checkpoint: start → first agent ping. */
    lazyRestoreToPingMs: number;
    lazyVerifyBad: number;
    /** Mapped restores, start → first agent ping: the first (builds the image), the second. */
    mappedFirstToPingMs: number;
    mappedToPingMs: number;
    mappedVerifyBad: number;
    /** The eagerly restored VM saved again: incremental from the checkpoint it came from. */
    incrementalBytes: number;
    incrementalSaveMs: number;
  };
  readonly verify: {
    pages: number;
    bad: number;
    filesOk: number;
    filesBad: number;
    rewritesBefore: number;
    rewritesAfter: number;
  };
}

/**
 * Each restore starts from settled host memory, as in `bench restore` (ADR 0025): memory a VM
 * freed moments ago is much cheaper to touch, which favoured whichever restore came first.
 */
async function settle(log: (line: string) => void): Promise<void> {
  log(`letting host memory settle for ${SETTLE_MS_DEFAULT / 1000} s (ADR 0025)…`);
  await sleep(SETTLE_MS_DEFAULT);
}

export async function runComparison(opts: CompareOptions): Promise<CompareResult> {
  const { home, log } = opts;
  const params = { memMiB: opts.memMiB, hotPct: 5, hotRate: 1000 };
  log(`booting a ${opts.memoryMiB} MiB test guest that fills ${opts.memMiB} MiB (TCG)…`);
  const { vm, agent } = await bootTestGuest(home, {
    name: "cmp",
    memoryMiB: opts.memoryMiB,
    params,
  });
  const before = await agent.stats();
  agent.close();

  log("saving with QEMU's own migrate to a file…");
  const file = join(opts.workDir, "qemu-stream.mig");
  const q = await qemuSave(vm, file);
  log("saving with snapwake…");
  const s = await save({ home, vm, name: "cmp@1", after: "pause" });
  await killVm(home, vm);

  await settle(log);
  log("restoring with QEMU's own -incoming…");
  const spec = testGuestSpec({ name: "cmp-qemu", memoryMiB: opts.memoryMiB, params });
  const qStart = performance.now();
  const qr = await qemuRestore(home, spec, file);
  (await connectAgent(qr.vm)).close();
  const qemuPingMs = performance.now() - qStart;
  await stopVm(home, qr.vm);

  await settle(log);
  log("restoring with snapwake (eager)…");
  const sStart = performance.now();
  const sr = await restore({ home, checkpoint: "cmp@1", vmName: "cmp-sw", mode: "eager" });
  const back = await connectAgent(sr.vm);
  const swPingMs = performance.now() - sStart;
  log("the restored guest verifies its memory and files…");
  const verify = await back.verify({ timeoutMs: 300_000 });
  const files = await back.files({ timeoutMs: 300_000 });
  back.close();
  log("saving the restored guest again: incremental from the checkpoint it came from…");
  const inc = await save({ home, vm: sr.vm.name, name: "cmp@2", after: "pause" });
  await stopVm(home, sr.vm.name);

  await settle(log);
  log("restoring with snapwake (lazy): the guest runs while its pages arrive…");
  const lStart = performance.now();
  const lr = await restore({ home, checkpoint: "cmp@1", mode: "lazy", vmName: "cmp-lazy" });
  const lazyAgent = await connectAgent(lr.vm);
  const lazyPingMs = performance.now() - lStart;
  const lazyVerify = await lazyAgent.verify({ timeoutMs: 300_000 });
  lazyAgent.close();
  await lr.fill;
  await stopVm(home, lr.vm.name);

  const mapped: number[] = [];
  let mappedVerifyBad = 0;
  for (const vmName of ["cmp-mapped-1", "cmp-mapped-2"]) {
    await settle(log);
    log(
      mapped.length === 0
        ? "restoring with snapwake (mapped): the first builds the checkpoint's RAM image…"
        : "restoring with snapwake (mapped) again: QEMU maps the kept image…",
    );
    const mStart = performance.now();
    const mr = await restore({ home, checkpoint: "cmp@1", mode: "mapped", vmName });
    const mappedAgent = await connectAgent(mr.vm);
    mapped.push(performance.now() - mStart);
    mappedVerifyBad += (await mappedAgent.verify({ timeoutMs: 300_000 })).bad;
    mappedAgent.close();
    await stopVm(home, mr.vm.name);
  }

  return {
    guest: { memoryMiB: opts.memoryMiB, memMiB: opts.memMiB, dataFilesCached: before.filesOk },
    qemu: { ...q, restoreMs: qr.restoreMs, restoreToPingMs: qemuPingMs },
    snapwake: {
      checkpointBytes: s.checkpoint.bytes,
      saveMs: s.wallMs,
      restoreMs: sr.wallMs,
      restoreToPingMs: swPingMs,
      ingestMBps: s.streamBytes / 1e6 / (s.wallMs / 1000),
      dataPages: sr.dataPages,
      zeroPages: sr.zeroPages,
      lazyRestoreToPingMs: lazyPingMs,
      lazyVerifyBad: lazyVerify.bad,
      mappedFirstToPingMs: mapped[0] ?? Number.NaN,
      mappedToPingMs: mapped[1] ?? Number.NaN,
      mappedVerifyBad,
      incrementalBytes: inc.checkpoint.bytes,
      incrementalSaveMs: inc.wallMs,
    },
    verify: {
      pages: verify.pages,
      bad: verify.bad,
      filesOk: files.ok,
      filesBad: files.bad,
      rewritesBefore: before.rewrites,
      rewritesAfter: verify.rewrites,
    },
  };
}

/** The comparison as a table of figures and snapwake/QEMU ratios. */
export function formatComparison(r: CompareResult): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
  type Row = [string, string, string, string];
  /** QEMU's figure, snapwake's, and their ratio, each shown with `show`. */
  const vs = (label: string, show: (x: number) => string, qemu: number, sw: number): Row => [
    label,
    show(qemu),
    show(sw),
    ratio(sw, qemu),
  ];
  const q = r.qemu;
  const s = r.snapwake;
  const rows: Row[] = [
    ["", "QEMU's own", "snapwake", "snapwake / QEMU"],
    vs("saved bytes (raw stream)", mib, q.streamBytes, s.checkpointBytes),
    vs("saved bytes (stream zstd -1)", mib, q.zstdBytes, s.checkpointBytes),
    vs("save wall time", sec, q.saveMs, s.saveMs),
    vs("eager restore wall time", sec, q.restoreMs, s.restoreMs),
    vs("restore start → ping (snapwake eager)", sec, q.restoreToPingMs, s.restoreToPingMs),
    vs("restore start → ping (snapwake lazy)", sec, q.restoreToPingMs, s.lazyRestoreToPingMs),
    vs(
      "restore start → ping (snapwake mapped, builds image)",
      sec,
      q.restoreToPingMs,
      s.mappedFirstToPingMs,
    ),
    vs(
      "restore start → ping (snapwake mapped, image kept)",
      sec,
      q.restoreToPingMs,
      s.mappedToPingMs,
    ),
    vs(
      "saved bytes, restored VM saved again (incremental)",
      mib,
      q.streamBytes,
      s.incrementalBytes,
    ),
    vs("save wall time, restored VM saved again", sec, q.saveMs, s.incrementalSaveMs),
    ["save ingest throughput", "", `${s.ingestMBps.toFixed(0)} MB/s`, ""],
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i]?.length ?? 0)));
  const lines = rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  "));
  const v = r.verify;
  lines.push(
    "",
    `guest: ${r.guest.memoryMiB} MiB RAM, ${r.guest.memMiB} MiB workload, ` +
      `${r.guest.dataFilesCached} data files cached`,
    `after snapwake restore the guest verified ${v.pages} pages: ${v.bad} bad; ` +
      `${v.filesOk} files ok, ${v.filesBad} bad; ` +
      `hot-writer counter ${v.rewritesBefore} → ${v.rewritesAfter}; after the lazy restore ` +
      `${r.snapwake.lazyVerifyBad} bad pages, after the mapped ones ${r.snapwake.mappedVerifyBad}`,
  );
  return lines.join("\n");
}
