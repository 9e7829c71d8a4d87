/**
 * `npm run bench -- [save|restore|all] [options]`: side-by-side tables of snapwake against
 * QEMU's own save/restore, each measured in one run on one booted guest, written as JSON to
 * build/bench/. Only ratios within one run mean anything on shared machines.
 *   save     checkpoint bytes, save time, eager restore time vs QEMU's migrate/-incoming
 *   restore  TTR, restore overhead and the VEE'11 table: QEMU, eager, lazy, partial (trace/write set)
 *   space    checkpoint bytes of a page-cache-heavy and a mostly-anonymous guest: QEMU's stream
 *            raw and zstd -1, snapwake with and without disk references, incremental later
 *            (--files-mib of files for the first guest, --later-seconds before the incremental)
 *   soak     --saves N live saves of a guest rewriting 20% of its memory, each restored eager
 *            or lazy (alternately) and verified; failures and dirty-sync counts (not in "all")
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { guestArtifacts, loadGuestInfo } from "../src/guest/index.ts";
import { killVm, listVms } from "../src/vm/index.ts";
import { formatComparison, runComparison } from "./lib/compare.ts";
import { formatRestoreBench, runRestoreBench } from "./lib/restore-modes.ts";
import { formatSoak, runSoak } from "./lib/soak.ts";
import { runSpaceGuest, type SpaceGuestPlan, type SpaceGuestResult } from "./lib/space.ts";
import { spaceDataDisk } from "./lib/space-data-disk.ts";
import { formatSpaceBench, PARK_TC16 } from "./lib/space-format.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "memory-mib": { type: "string", default: "1024" },
    "work-mib": { type: "string", default: "384" },
    "trace-seconds": { type: "string", default: "3" },
    "files-mib": { type: "string", default: "320" },
    "later-seconds": { type: "string", default: "60" },
    saves: { type: "string", default: "8" },
    out: { type: "string", default: "build/bench" },
  },
});
const which = positionals[0] ?? "all";
if (!["save", "restore", "space", "soak", "all"].includes(which)) {
  console.error(`bench: unknown bench "${which}": use save, restore, space, soak or all`);
  process.exit(2);
}
const memoryMiB = Number(values["memory-mib"]);
const memMiB = Number(values["work-mib"]);
const log = (line: string) => console.error(`bench: ${line}`);
await mkdir(values.out, { recursive: true });

async function inScratch<T>(run: (work: string) => Promise<T>): Promise<T> {
  const work = await mkdtemp(join(tmpdir(), "snapwake-bench-"));
  try {
    return await run(work);
  } finally {
    // A failed run must not leave its guests burning a core after their home is gone.
    const home = join(work, "home");
    for (const vm of await listVms(home).catch(() => [])) await killVm(home, vm.name);
    await rm(work, { recursive: true, force: true });
  }
}

async function writeJson(name: string, value: unknown): Promise<void> {
  const file = join(values.out, name);
  await writeFile(
    file,
    `${JSON.stringify({ at: new Date().toISOString(), ...(value as object) }, null, 2)}\n`,
  );
  console.log(`JSON: ${file}\n`);
}

if (which === "save" || which === "all") {
  const result = await inScratch((work) =>
    runComparison({ home: join(work, "home"), workDir: work, memoryMiB, memMiB, log }),
  );
  console.log(
    `\nsnapwake vs QEMU's own save/restore (eager), one run\n\n${formatComparison(result)}\n`,
  );
  await writeJson("save-restore.json", result);
}

if (which === "restore" || which === "all") {
  const workloads = [
    { name: "small hot set (2%)", params: { memMiB, hotPct: 2, hotRate: 2000 } },
    { name: "large hot set (25%)", params: { memMiB, hotPct: 25, hotRate: 4000 } },
  ];
  const results = [];
  for (const w of workloads) {
    const result = await inScratch((work) =>
      runRestoreBench({
        home: join(work, "home"),
        workDir: work,
        memoryMiB,
        params: w.params,
        traceSeconds: Number(values["trace-seconds"]),
        workMiB: 64,
        log,
      }),
    );
    console.log(`\nrestore modes, ${w.name} workload, one run\n\n${formatRestoreBench(result)}\n`);
    results.push({ workload: w.name, ...result });
  }
  await writeJson("restore.json", { workloads: results });
}

if (which === "space" || which === "all") {
  const filesMiB = Number(values["files-mib"]);
  const laterSeconds = Number(values["later-seconds"]);
  if (!Number.isSafeInteger(filesMiB) || filesMiB < 16 || filesMiB > 2048) {
    console.error(`bench: --files-mib ${values["files-mib"]}: use an integer from 16 to 2048`);
    process.exit(2);
  }
  if (!Number.isSafeInteger(laterSeconds) || laterSeconds < 0 || laterSeconds > 3600) {
    console.error(`bench: --later-seconds ${values["later-seconds"]}: use 0 to 3600`);
    process.exit(2);
  }
  const files = await spaceDataDisk(filesMiB, log);
  const plans: SpaceGuestPlan[] = [
    {
      kind: "page-cache-heavy",
      memoryMiB,
      params: { memMiB: 16, hotPct: 5, hotRate: 200 },
      rawDataDisk: files.raw,
      dataFileBytes: files.dataBytes,
    },
    {
      kind: "mostly anonymous",
      memoryMiB,
      params: { memMiB, hotPct: 5, hotRate: 1000 },
      rawDataDisk: guestArtifacts().dataDisk,
      dataFileBytes: (await loadGuestInfo()).dataBytes,
    },
  ];
  const guests: SpaceGuestResult[] = [];
  for (const plan of plans)
    guests.push(
      await inScratch((work) =>
        runSpaceGuest({ home: join(work, "home"), workDir: work, plan, laterSeconds, log }),
      ),
    );
  console.log(
    `\ncheckpoint bytes and save time, each guest saved every way, one run\n\n` +
      `${formatSpaceBench(guests, laterSeconds)}\n`,
  );
  await writeJson("space.json", { laterSeconds, park: PARK_TC16, guests });
}

if (which === "soak") {
  const saves = Number(values.saves);
  if (!Number.isSafeInteger(saves) || saves < 1 || saves > 1000) {
    console.error(`bench: --saves ${values.saves}: use an integer from 1 to 1000`);
    process.exit(2);
  }
  const params = { memMiB, hotPct: 20, hotRate: 20000 };
  const rows = await inScratch((work) =>
    runSoak({ home: join(work, "home"), memoryMiB, params, saves, log }),
  );
  console.log(
    `\nsoak: ${saves} saves, each restored and verified, one run\n\n${formatSoak(rows)}\n`,
  );
  await writeJson("soak.json", { params, rows });
}
