/**
 * `npm run bench -- soak`: N saves of one running guest that rewrites a large share of its
 * memory, each restored (eager and lazy alternately) into a second VM that verifies every page
 * it owns. Prints one row per save and the failures. A save on QEMU < 9.0 under TCG pauses the
 * guest (ADR 0011), so the rows say whether each save was live.
 */
import { waitUntilResponsive } from "../../guest/index.ts";
import { restore } from "../../src/restore/index.ts";
import { save } from "../../src/save/index.ts";
import { killVm, listVms } from "../../src/vm/index.ts";
import { bootTestGuest } from "../../test/support/test-guest.ts";

/** A restored guest that does not answer in this long is counted as broken. */
const RESPONSIVE_BUDGET_MS = 60_000;
const VERIFY_TIMEOUT_MS = 180_000;

export interface SoakOptions {
  readonly home: string;
  readonly memoryMiB: number;
  /** Pages the guest owns, MiB; hotPct of them are rewritten at hotRate pages/s. */
  readonly params: { memMiB: number; hotPct: number; hotRate: number };
  readonly saves: number;
  /** save()'s `live`: true (paused on QEMU < 9.0 under TCG) or "unsafe" (live anyway). */
  readonly live: true | "unsafe";
  readonly log: (line: string) => void;
}

export interface SoakRow {
  readonly save: number;
  readonly mode: "eager" | "lazy";
  readonly live: boolean;
  /** query-migrate's dirty-sync-count of the save's migration. */
  readonly dirtySyncs: number;
  readonly writeSetPages: number;
  readonly saveMs: number;
  /** From starting the restore to the guest's verdict (verify included). */
  readonly restoreMs: number;
  /** Pages the restored guest found wrong; null when it could not verify. */
  readonly bad: number | null;
  readonly failure: string | null;
}

export async function runSoak(o: SoakOptions): Promise<SoakRow[]> {
  const { vm, agent } = await bootTestGuest(o.home, {
    name: "soak",
    memoryMiB: o.memoryMiB,
    params: o.params,
  });
  agent.close();
  const rows: SoakRow[] = [];
  try {
    for (let i = 0; i < o.saves; i++) {
      const name = `soak@${i}`;
      const mode = i % 2 === 0 ? "eager" : "lazy";
      const saved = await save({ home: o.home, vm, name, live: o.live });
      const migration = await vm.qmp.execute("query-migrate");
      const dirtySyncs = migration.ram?.["dirty-sync-count"] ?? 0;
      const base = {
        save: i,
        mode,
        live: saved.live,
        dirtySyncs,
        writeSetPages: saved.writeSetPages,
        saveMs: Math.round(saved.wallMs),
      } as const;
      const restoreStart = performance.now();
      const verdict = await restoreAndVerify(o.home, name, mode, `soak-r${i}`);
      const restoreMs = Math.round(performance.now() - restoreStart);
      rows.push({ ...base, restoreMs, ...verdict });
      o.log(`save ${i} (${mode}): ${verdict.failure ?? `bad ${verdict.bad}`}`);
    }
  } finally {
    for (const v of await listVms(o.home)) await killVm(o.home, v.name);
  }
  return rows;
}

async function restoreAndVerify(
  home: string,
  checkpoint: string,
  mode: "eager" | "lazy",
  vmName: string,
): Promise<{ bad: number | null; failure: string | null }> {
  try {
    const r =
      mode === "eager"
        ? await restore({ home, checkpoint, vmName, mode: "eager" })
        : await restore({ home, checkpoint, vmName, mode: "lazy" });
    // A lazy fill that fails is a result, not an unhandled rejection.
    const filled =
      "fill" in r
        ? r.fill.then(
            () => null,
            (e: unknown) => String(e),
          )
        : null;
    if (r.vm.agentSocket === null) return { bad: null, failure: "no agent socket" };
    const agent = await waitUntilResponsive(r.vm.agentSocket, RESPONSIVE_BUDGET_MS);
    try {
      const fillFailure = await filled;
      if (fillFailure !== null) return { bad: null, failure: `lazy fill: ${fillFailure}` };
      const verify = await agent.verify({ timeoutMs: VERIFY_TIMEOUT_MS });
      return { bad: verify.bad, failure: verify.bad === 0 ? null : `${verify.bad} bad pages` };
    } finally {
      agent.close();
    }
  } catch (error) {
    return { bad: null, failure: error instanceof Error ? error.message : String(error) };
  } finally {
    await killVm(home, vmName).catch(() => undefined);
  }
}

export interface SoakSummary {
  readonly saves: number;
  readonly liveSaves: number;
  readonly failures: number;
  readonly restores: Record<"eager" | "lazy", { readonly count: number; readonly failed: number }>;
  readonly dirtySyncs: { readonly min: number; readonly median: number; readonly max: number };
  readonly saveMs: { readonly min: number; readonly median: number; readonly max: number };
  readonly restoreMs: { readonly min: number; readonly median: number; readonly max: number };
}

export function summarizeSoak(rows: readonly SoakRow[]): SoakSummary {
  const spread = (values: number[]) => {
    const sorted = values.toSorted((a, b) => a - b);
    return {
      min: sorted[0] ?? 0,
      median: sorted[Math.floor(sorted.length / 2)] ?? 0,
      max: sorted.at(-1) ?? 0,
    };
  };
  const byMode = (mode: "eager" | "lazy") => {
    const of = rows.filter((r) => r.mode === mode);
    return { count: of.length, failed: of.filter((r) => r.failure !== null).length };
  };
  return {
    saves: rows.length,
    liveSaves: rows.filter((r) => r.live).length,
    failures: rows.filter((r) => r.failure !== null).length,
    restores: { eager: byMode("eager"), lazy: byMode("lazy") },
    dirtySyncs: spread(rows.map((r) => r.dirtySyncs)),
    saveMs: spread(rows.map((r) => r.saveMs)),
    restoreMs: spread(rows.map((r) => r.restoreMs)),
  };
}

export function formatSoak(rows: readonly SoakRow[]): string {
  const lines = ["save  restore  live  dirty syncs  write set  save ms  restore ms  result"];
  for (const r of rows) {
    lines.push(
      `${String(r.save).padStart(4)}  ${r.mode.padEnd(7)}  ${(r.live ? "yes" : "no").padEnd(4)}  ` +
        `${String(r.dirtySyncs).padStart(11)}  ${String(r.writeSetPages).padStart(9)}  ` +
        `${String(r.saveMs).padStart(7)}  ${String(r.restoreMs).padStart(10)}  ` +
        `${r.failure ?? "verified, 0 bad"}`,
    );
  }
  const s = summarizeSoak(rows);
  const range = (x: { min: number; median: number; max: number }) =>
    `${x.min} / ${x.median} / ${x.max}`;
  lines.push(
    `${s.failures} of ${s.saves} restores failed (eager ${s.restores.eager.failed} of ` +
      `${s.restores.eager.count}, lazy ${s.restores.lazy.failed} of ${s.restores.lazy.count}); ` +
      `${s.liveSaves} saves live`,
    `min / median / max: dirty syncs ${range(s.dirtySyncs)}, save ms ${range(s.saveMs)}, ` +
      `restore ms ${range(s.restoreMs)}`,
  );
  return lines.join("\n");
}
