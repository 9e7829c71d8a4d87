/**
 * `npm run bench -- [save|restore|all] [options]`: side-by-side tables of snapwake against
 * QEMU's own save/restore, each measured in one run on one booted guest, written as JSON to
 * build/bench/. Only ratios within one run mean anything on shared machines.
 *   save     checkpoint bytes, save time, eager restore time vs QEMU's migrate/-incoming
 *   restore  the user's path (docs/bench.md): `snapwake save`/`restore`/`profile` as processes
 *            against QEMU's own migrate to a file and -incoming, per guest size (--sizes),
 *            workload (--workloads hot,sweep), cache (--caches warm,cold,throttled) and mode
 *            (--modes qemu,eager,mapped-build,mapped,lazy,auto,partial,partial-ab,partial-ws):
 *            time from invoking the restore to the guest's first useful output, its ratio to
 *            QEMU's own, and the VEE'11 table
 *   space    checkpoint bytes of a page-cache-heavy and a mostly-anonymous guest: QEMU's stream
 *            raw and zstd -1, snapwake with and without disk references, incremental later
 *            (--files-mib of files for the first guest, --later-seconds before the incremental)
 *   estimators  VEE'11's estimator table (bench/lib/estimators.ts): save, eager restore (a clean
 *            A-bit window), --run-seconds of work, save again; each working set set against a
 *            trace, and lazy vs partial(accessed bits / write set / trace) restores of it;
 *            --sizes (default 512), --workloads; JSON estimators.json (not in "all")
 *   soak     --saves N (default 30) live saves of a guest rewriting 30% of its --work-mib (over
 *            10% of its memory), each restored eager or lazy (alternately) and verified; failures
 *            and dirty-sync counts, JSON soak-<qemu>.json (not in "all"). --unsafe-live saves live
 *            even on QEMU < 9.0 under TCG, to show what its pause prevents
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { guestArtifacts, loadGuestInfo } from "../guest/index.ts";
import { killVm, listVms } from "../src/vm/index.ts";
import { formatComparison, runComparison } from "./lib/compare.ts";
import { type EstimatorResult, formatEstimators, runEstimatorGuest } from "./lib/estimators.ts";
import {
  CACHES,
  type Cache,
  type GuestResult,
  MODES,
  type Mode,
  runRestoreGuest,
  SETTLE_MS_DEFAULT,
} from "./lib/restore-bench.ts";
import { formatRatioSummary, formatRestoreGuest } from "./lib/restore-format.ts";
import { formatSoak, runSoak, summarizeSoak } from "./lib/soak.ts";
import { runSpaceGuest, type SpaceGuestPlan, type SpaceGuestResult } from "./lib/space.ts";
import { spaceDataDisk } from "./lib/space-data-disk.ts";
import { formatSpaceBench, PARK_TC16 } from "./lib/space-format.ts";

const USAGE =
  "usage: npm run bench -- [save|restore|space|soak|estimators|all] [options]\n" +
  "options and what each bench measures: docs/bench.md";

const { values, positionals } = parseBenchArgs({
  allowPositionals: true,
  options: {
    help: { type: "boolean", short: "h", default: false },
    "memory-mib": { type: "string", default: "1024" },
    "work-mib": { type: "string", default: "384" },
    "trace-seconds": { type: "string" },
    sizes: { type: "string" },
    "run-seconds": { type: "string", default: "10" },
    workloads: { type: "string", default: "hot,sweep" },
    caches: { type: "string", default: CACHES.join(",") },
    modes: { type: "string", default: MODES.join(",") },
    "written-pct": { type: "string", default: "50" },
    throttle: { type: "string", default: "200,5" },
    "settle-seconds": { type: "string", default: String(SETTLE_MS_DEFAULT / 1000) },
    "save-mode": { type: "string", default: "paused" },
    "files-mib": { type: "string", default: "320" },
    "later-seconds": { type: "string", default: "60" },
    saves: { type: "string", default: "30" },
    "unsafe-live": { type: "boolean", default: false },
    out: { type: "string", default: "build/bench" },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const which = positionals[0] ?? "all";
if (!["save", "restore", "space", "soak", "estimators", "all"].includes(which)) {
  console.error(
    `bench: unknown bench "${which}": use save, restore, space, soak, estimators or all`,
  );
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
  const list = <T extends string>(name: keyof typeof values, allowed: readonly T[]): T[] => {
    const items = String(values[name])
      .split(",")
      .map((x) => x.trim());
    const bad = items.filter((x) => !(allowed as readonly string[]).includes(x));
    if (bad.length > 0 || items.length === 0) {
      console.error(`bench: --${name} ${values[name]}: use a comma list of ${allowed.join(", ")}`);
      process.exit(2);
    }
    return items as T[];
  };
  const sizes = String(values.sizes ?? "512,2048,4096")
    .split(",")
    .map(Number);
  const writtenPct = Number(values["written-pct"]);
  if (sizes.some((x) => !Number.isSafeInteger(x) || x < 256 || x > 16384)) {
    console.error(`bench: --sizes ${values.sizes}: use guest sizes in MiB, 256 to 16384`);
    process.exit(2);
  }
  if (!(writtenPct >= 10 && writtenPct <= 80)) {
    console.error(`bench: --written-pct ${values["written-pct"]}: use 10 to 80`);
    process.exit(2);
  }
  const [mbps, latencyMs] = String(values.throttle).split(",").map(Number);
  if (mbps === undefined || latencyMs === undefined || !(mbps > 0) || !(latencyMs >= 0)) {
    console.error(`bench: --throttle ${values.throttle}: use MB/s,latency ms (e.g. 200,5)`);
    process.exit(2);
  }
  const saveMode = list("save-mode", ["paused", "live"] as const)[0] ?? "paused";
  const workloads = list("workloads", ["hot", "sweep"] as const);
  const caches = list<Cache>("caches", CACHES);
  const modes = list<Mode>("modes", MODES);
  const settleSeconds = Number(values["settle-seconds"]);
  if (!(settleSeconds >= 0)) {
    console.error("bench: --settle-seconds wants a number of seconds, 0 or more");
    process.exit(2);
  }
  const guests: GuestResult[] = [];
  const started = performance.now();
  for (const sizeMiB of sizes) {
    for (const workload of workloads) {
      const memMiB = Math.round((sizeMiB * writtenPct) / 100);
      const params = {
        memMiB,
        hotPct: 3,
        hotRate: 2000,
        seed: 1,
        sweepMs: workload === "sweep" ? 2000 : 0,
      };
      const guestStarted = performance.now();
      const result = await inScratch((work) =>
        runRestoreGuest({
          home: join(work, "home"),
          workDir: work,
          plan: {
            sizeMiB,
            workload,
            params,
            caches,
            modes,
            throttle: { mbps, latencyMs },
            profileSeconds:
              values["trace-seconds"] === undefined ? null : Number(values["trace-seconds"]),
            save: saveMode,
            settleMs: settleSeconds * 1000,
          },
          log,
        }),
      );
      log(
        `${sizeMiB} MiB ${workload}: done in ${((performance.now() - guestStarted) / 1000).toFixed(0)} s`,
      );
      console.log(`\n${formatRestoreGuest(result)}\n`);
      guests.push(result);
      // Written after every guest, so a long run that is stopped keeps what it measured.
      await writeJson("restore.json", restoreJson(guests, { mbps, latencyMs }, settleSeconds));
    }
  }
  console.log(
    `\nfirst useful output, each mode against QEMU's own (× = snapwake / QEMU; QEMU in s), ` +
      `one run, ${((performance.now() - started) / 60_000).toFixed(1)} min\n\n${formatRatioSummary(guests)}\n`,
  );
}

function restoreJson(
  guests: readonly GuestResult[],
  throttle: { mbps: number; latencyMs: number },
  settleSeconds: number,
) {
  return {
    definition: {
      firstOutputMs:
        "from invoking the restore (spawning `snapwake restore`, or starting QEMU for QEMU's own) " +
        "until the guest agent has answered a ping AND a `stats` reply shows the workload's next " +
        "tick: for a sweeping guest `sweeps` above its value in the saved state (a sweep over all " +
        "written memory completed after the restore); otherwise `rewrites` above its value in an " +
        "earlier reply from the same restored guest (the hot writer, 10 ms ticks, seen running)",
      firstPingMs: "from invoking the restore until the agent's first pong",
      commandMs:
        "from invoking the restore until `snapwake restore` exited (lazy/partial: the guest runs, " +
        "a detached server fills it) or, for QEMU's own, its migration completed and `cont` returned",
      cold: "sync and drop_caches (echo 3) right before each restore, QEMU's stream file included",
      settleMs:
        "idle time before each restore (after the previous VM stopped and, cold, after the " +
        "cache drop): on a host whose kernel reports free memory to its hypervisor, memory freed " +
        "moments ago is 5-25x cheaper to touch than memory freed seconds ago, so every restore, " +
        "QEMU's own included, starts from the same state (docs/bench.md, 'Settled memory'; ADR 0025)",
      throttled:
        "warm page cache under an emulated store: every read waits `latencyMs`, overlapping other " +
        "reads, and its bytes share one `mbps` link (snapwake: SNAPWAKE_STORE_THROTTLE; QEMU: " +
        "bench/lib/throttled-read.ts as its exec: reader, 1 MiB reads, 2 in flight)",
      prefetched: "pages sent before the guest ran (eager: all)",
      lazyFaults: "distinct pages the guest requested (FillReport.lazyRequests)",
      pushed: "pages sent unasked after the guest ran (locality and background)",
      serviceMs: "page request received → its page handed to the socket, from the restore record",
    },
    throttle,
    settleMs: settleSeconds * 1000,
    guests,
  };
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

if (which === "estimators") {
  const sizes = String(values.sizes ?? "512")
    .split(",")
    .map(Number);
  const runSeconds = Number(values["run-seconds"]);
  if (sizes.some((x) => !Number.isSafeInteger(x) || x < 256 || x > 16384)) {
    console.error(`bench: --sizes ${values.sizes}: use guest sizes in MiB, 256 to 16384`);
    process.exit(2);
  }
  if (!(runSeconds >= 1 && runSeconds <= 600)) {
    console.error(`bench: --run-seconds ${values["run-seconds"]}: use 1 to 600`);
    process.exit(2);
  }
  const workloads = String(values.workloads).split(",");
  if (workloads.some((w) => w !== "hot" && w !== "sweep")) {
    console.error(`bench: --workloads ${values.workloads}: use hot, sweep or both`);
    process.exit(2);
  }
  const results: EstimatorResult[] = [];
  for (const sizeMiB of sizes) {
    for (const workload of workloads as ("hot" | "sweep")[]) {
      const params = {
        memMiB: Math.round(sizeMiB / 2),
        hotPct: 3,
        hotRate: 2000,
        seed: 1,
        sweepMs: workload === "sweep" ? 2000 : 0,
      };
      const result = await inScratch((work) =>
        runEstimatorGuest({
          home: join(work, "home"),
          workDir: work,
          plan: { sizeMiB, workload, params, runSeconds },
          log,
        }),
      );
      console.log(`\n${formatEstimators(result)}\n`);
      results.push(result);
      await writeJson("estimators.json", { guests: results });
    }
  }
}

if (which === "soak") {
  const saves = Number(values.saves);
  if (!Number.isSafeInteger(saves) || saves < 1 || saves > 1000) {
    console.error(`bench: --saves ${values.saves}: use an integer from 1 to 1000`);
    process.exit(2);
  }
  // 30% of the 384 MiB working memory is 115 MiB, 11% of the 1024 MiB guest, rewritten at
  // 20000 pages/s (78 MiB/s): every save has pages written between its dirty syncs.
  const params = { memMiB, hotPct: 30, hotRate: 20000 };
  const qemu = process.env.SNAPWAKE_QEMU ?? "10.0";
  const live = values["unsafe-live"] ? "unsafe" : true;
  const rows = await inScratch((work) =>
    runSoak({ home: join(work, "home"), memoryMiB, params, saves, live, log }),
  );
  console.log(
    `\nsoak on QEMU ${qemu}${live === "unsafe" ? " (unsafe live saves)" : ""}: ${saves} saves, ` +
      `each restored and verified, one run\n\n${formatSoak(rows)}\n`,
  );
  const suffix = live === "unsafe" ? "-unsafe-live" : "";
  await writeJson(`soak-${qemu.replaceAll("/", "_")}${suffix}.json`, {
    qemu,
    memoryMiB,
    params,
    live,
    summary: summarizeSoak(rows),
    rows,
  });
}

/** parseArgs, with a one-line error and the usage instead of a stack trace on a bad option. */
function parseBenchArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    const why = error instanceof Error ? error.message.split(". ")[0] : String(error);
    console.error(`bench: ${why}\n${USAGE}`);
    process.exit(2);
  }
}
