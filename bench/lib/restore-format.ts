/** The restore bench's tables: per guest and cache, each mode's time against QEMU's own. */
import type { GuestResult, ModeRun } from "./restore-bench.ts";

export const sec = (ms: number | null) => (ms === null ? "–" : `${(ms / 1000).toFixed(2)} s`);
export const n = (v: number | null) => (v === null ? "–" : String(v));
const ms2 = (v: number) => v.toFixed(1);

/** "mode / QEMU's own" for the first useful output, or "" without both. */
export function ratioToQemu(m: ModeRun, qemu: ModeRun | undefined): number | null {
  const q = qemu?.firstOutputMs ?? null;
  return m.firstOutputMs === null || q === null || q <= 0 ? null : m.firstOutputMs / q;
}

/** Rows as left-aligned columns, two spaces apart. */
export function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function formatRestoreGuest(g: GuestResult): string {
  const out: string[] = [];
  const s = g.saves;
  out.push(
    `${g.sizeMiB} MiB guest, ${g.params.memMiB} MiB written, ${g.workload} workload ` +
      `(${g.params.hotPct}% hot at ${g.params.hotRate} pages/s` +
      (g.params.sweepMs > 0 ? `, sweeping all of it every ${g.params.sweepMs} ms)` : ")") +
      `; saved ${g.save}`,
    `  save: QEMU's own ${sec(s.qemu.ms)} (${(s.qemu.bytes / 2 ** 20).toFixed(0)} MiB stream), ` +
      `snapwake save ${sec(s.snapwake.ms)} (${(s.snapwake.bytes / 2 ** 20).toFixed(0)} MiB checkpoint)` +
      ` = ${(s.snapwake.ms / s.qemu.ms).toFixed(2)}×`,
    `  guest paused (its agent silent): QEMU's own ${sec(s.qemu.guestPausedMs)}, ` +
      `snapwake ${sec(s.snapwake.guestPausedMs)} = ` +
      `${(s.snapwake.guestPausedMs / s.qemu.guestPausedMs).toFixed(2)}×`,
  );
  if (g.profile !== null)
    out.push(
      `  snapwake profile: ${sec(g.profile.ms)}, ${g.profile.tracedPages} pages traced → working set ` +
        `${g.profile.workingSetPages} pages (${n(g.profile.prefetchPagesAfter)} to prefetch after relayout)`,
    );
  for (const run of g.runs) {
    const qemu = run.modes.find((m) => m.mode === "qemu");
    const header = [
      "mode",
      "first output",
      "×QEMU",
      "first ping",
      "cmd done",
      "prefetched",
      "lazy faults",
      "pushed",
      "full fill",
      "req p50/p99/max ms",
      "MiB read",
      "bad",
    ];
    const measured = run.modes.filter((m) => m.skipped === null);
    const rows = measured.map((m) => {
      const r = ratioToQemu(m, qemu);
      return [
        m.mode === "auto" ? `${m.label} → ${m.ran}` : m.label,
        sec(m.firstOutputMs),
        r === null ? "" : `${r.toFixed(2)}×`,
        sec(m.firstPingMs),
        sec(m.commandMs),
        n(m.prefetched),
        n(m.lazyFaults),
        n(m.pushed),
        sec(m.fullFillMs),
        m.serviceMs === null
          ? "–"
          : `${ms2(m.serviceMs.p50)}/${ms2(m.serviceMs.p99)}/${ms2(m.serviceMs.max)}`,
        m.packMiBRead === null ? "–" : m.packMiBRead.toFixed(0),
        n(m.verifyBad),
      ];
    });
    out.push("", `  cache: ${run.cache}`, table([header, ...rows]).replace(/^/gm, "  "));
    for (const m of run.modes)
      if (m.skipped !== null) out.push(`  ${m.label}: skipped, ${m.skipped}`);
  }
  return out.join("\n");
}

/** One line per guest and cache: each mode's first-output ratio to QEMU's own. */
export function formatRatioSummary(guests: readonly GuestResult[]): string {
  const modes = [
    ...new Set(guests.flatMap((g) => g.runs.flatMap((r) => r.modes.map((m) => m.mode)))),
  ];
  const labels = new Map(
    guests.flatMap((g) => g.runs.flatMap((r) => r.modes.map((m) => [m.mode, m.label] as const))),
  );
  const header = ["guest", "workload", "cache", ...modes.map((m) => labels.get(m) ?? m)];
  const rows = guests.flatMap((g) =>
    g.runs.map((run) => {
      const qemu = run.modes.find((m) => m.mode === "qemu");
      return [
        `${g.sizeMiB} MiB`,
        g.workload,
        run.cache,
        ...modes.map((mode) => {
          const m = run.modes.find((x) => x.mode === mode);
          if (m === undefined || m.firstOutputMs === null) return "–";
          if (mode === "qemu") return sec(m.firstOutputMs);
          const r = ratioToQemu(m, qemu);
          return r === null ? sec(m.firstOutputMs) : `${r.toFixed(2)}×`;
        }),
      ];
    }),
  );
  return table([header, ...rows]);
}
