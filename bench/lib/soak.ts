/**
 * `npm run bench -- soak`: N saves of one running guest that rewrites a large share of its
 * memory, each restored (eager and lazy alternately) into a second VM that verifies every page
 * it owns. Prints one row per save and the failures. A save on QEMU < 9.0 under TCG pauses the
 * guest (ADR 0008), so the rows say whether each save was live.
 */
import { waitUntilResponsive } from "../../src/guest/index.ts";
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
      const saved = await save({ home: o.home, vm, name });
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
      const verdict = await restoreAndVerify(o.home, name, mode, `soak-r${i}`);
      rows.push({ ...base, ...verdict });
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

export function formatSoak(rows: readonly SoakRow[]): string {
  const lines = ["save  restore  live  dirty syncs  write set  save ms  result"];
  for (const r of rows) {
    lines.push(
      `${String(r.save).padStart(4)}  ${r.mode.padEnd(7)}  ${(r.live ? "yes" : "no").padEnd(4)}  ` +
        `${String(r.dirtySyncs).padStart(11)}  ${String(r.writeSetPages).padStart(9)}  ` +
        `${String(r.saveMs).padStart(7)}  ${r.failure ?? "verified, 0 bad"}`,
    );
  }
  const failed = rows.filter((r) => r.failure !== null).length;
  lines.push(`${failed} of ${rows.length} restores failed`);
  return lines.join("\n");
}
