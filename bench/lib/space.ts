/**
 * `bench space`: what a checkpoint of one running guest costs in bytes, each way, in one run:
 * QEMU's own migrate to a file (raw, and that stream through zstd -1), snapwake storing every
 * page, snapwake with disk-duplicate references (Park et al.), an incremental checkpoint taken
 * later, and one after the guest filled and freed FREED_MIB, without and (a second guest of
 * the same plan) with free page reporting. Every other save is of the same booted guest,
 * whose data disk is a writable qcow2 copy so snapwake's saves freeze it. Save times are within this run too:
 * only ratios mean anything on a shared machine.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { GuestParams } from "../../guest/index.ts";
import { CheckpointReader, CheckpointStore } from "../../src/checkpoint/index.ts";
import { LayerStore } from "../../src/disk/index.ts";
import { PAGE_SIZE_BYTES } from "../../src/limits.ts";
import { type SaveResult, save } from "../../src/save/index.ts";
import { killVm, type ManagedVm } from "../../src/vm/index.ts";
import { reportedAfter } from "../../test/support/qemu-rss.ts";
import { bootTestGuest, connectAgent } from "../../test/support/test-guest.ts";
import { qemuSave } from "./qemu-baseline.ts";
import { qcow2Copy } from "./space-data-disk.ts";

/** How qemuSave compresses QEMU's stream: the zstd command-line tool, level 1. */
export const ZSTD_TOOL = "zstd CLI, -1";

/** One guest of the bench: its size, workload and data disk. */
export interface SpaceGuestPlan {
  readonly kind: string;
  readonly memoryMiB: number;
  readonly params: Pick<GuestParams, "memMiB" | "hotPct" | "hotRate">;
  /** Raw ext4 image the guest's qcow2 data disk is copied from. */
  readonly rawDataDisk: string;
  /** Sum of that disk's data files, all of which the guest reads into its page cache at boot. */
  readonly dataFileBytes: number;
}

export interface SpaceOptions {
  readonly home: string;
  /** Where QEMU's stream file and the qcow2 data disk go. */
  readonly workDir: string;
  readonly plan: SpaceGuestPlan;
  /** Seconds the guest runs between the disk-reference save and the incremental one. */
  readonly laterSeconds: number;
  readonly log: (line: string) => void;
}

/** The snapwake rows, in the order they are saved. */
export type SnapwakeRow = "plain" | "dedup" | "incremental" | "freed" | "reported";

/** Memory the guest fills and frees before the free-memory rows ("a guest that has worked"). */
export const FREED_MIB = 256;

export interface SaveMeasure {
  /** The checkpoint's files on disk (frozen disk layers excluded: the VM needs its disk anyway). */
  readonly bytes: number;
  /** save() wall time: disk freeze, migration, compression, commit. */
  readonly saveMs: number;
  /** Migration stream bytes QEMU sent to snapwake. */
  readonly streamBytes: number;
}

export interface SpaceGuestResult {
  readonly guest: {
    kind: string;
    memoryMiB: number;
    anonMiB: number;
    dataFileBytes: number;
    /** `Cached:` of the guest's /proc/meminfo once its files were read. */
    pageCacheBytes: number;
    filesOk: number;
    filesBad: number;
  };
  readonly qemu: {
    streamBytes: number;
    zstdBytes: number;
    zstdTool: string;
    saveMs: number;
    /** The zstd pass over the stream file, after the migrate. */
    zstdMs: number;
  };
  /** null: that save did not run (printed "n/a"). */
  readonly snapwake: Readonly<Record<SnapwakeRow, SaveMeasure | null>>;
  /** Of the disk-reference checkpoint. */
  readonly diskRefs: {
    pagesDisk: number;
    diskRawBytes: number;
    pagesStored: number;
    pagesNonZero: number;
    /** Pages of the data files: what the page cache holds from the disk, zero pages included. */
    dataFilePages: number;
    /** Distinct non-zero 4 KiB blocks of the frozen base disk. */
    diskBlocks: number;
  };
}

interface SnapwakeStep {
  readonly row: SnapwakeRow;
  /** Seconds the guest runs on before this save. */
  readonly afterSeconds: number;
  readonly run: (target: { home: string; vm: ManagedVm }) => Promise<SaveResult>;
}

/** The snapwake saves of one guest, in order, each of the same running VM. */
function snapwakeSteps(laterSeconds: number): SnapwakeStep[] {
  return [
    {
      row: "plain",
      afterSeconds: 0,
      // Full checkpoints (parent: null): each save would otherwise share the previous one's pages.
      run: (t) => save({ ...t, name: "plain", diskDuplicates: false, parent: null }),
    },
    { row: "dedup", afterSeconds: 0, run: (t) => save({ ...t, name: "dedup", parent: null }) },
    // The checkpoint's bytes are its own files: the parent's packs it links are not counted.
    {
      row: "incremental",
      afterSeconds: laterSeconds,
      run: (t) => save({ ...t, name: "later", parent: "dedup" }),
    },
    {
      // The guest fills and frees memory: without free page reporting, a save stores it.
      row: "freed",
      afterSeconds: 0,
      run: async (t) => {
        await scratch(t.vm);
        return save({ ...t, name: "freed", parent: null });
      },
    },
  ];
}

/** The guest fills FREED_MIB of memory with incompressible bytes and frees it. */
async function scratch(vm: ManagedVm): Promise<void> {
  const agent = await connectAgent(vm);
  try {
    await agent.scratch(FREED_MIB, { timeoutMs: 120_000 });
  } finally {
    agent.close();
  }
}

/**
 * The "reported" row: a second guest of the same plan with free page reporting, which fills
 * and frees FREED_MIB, hands it back to QEMU, and is then saved with disk references.
 */
async function reportingGuest(opts: SpaceOptions): Promise<SaveMeasure> {
  const { home, plan, log } = opts;
  const disk = join(opts.workDir, "data-reporting.qcow2");
  qcow2Copy(plan.rawDataDisk, disk);
  log(`${plan.kind}: a second guest with free page reporting frees ${FREED_MIB} MiB…`);
  const { vm, agent } = await bootTestGuest(home, {
    name: "space-fpr",
    memoryMiB: plan.memoryMiB,
    params: plan.params,
    qcow2DataDisk: disk,
    freePageReporting: true,
  });
  agent.close();
  try {
    await reportedAfter(vm.pid, (FREED_MIB * 2 ** 20 * 3) / 4, () => scratch(vm));
    const s = await save({ home, vm, name: "reported", parent: null });
    return { bytes: s.checkpoint.bytes, saveMs: s.wallMs, streamBytes: s.streamBytes };
  } finally {
    await killVm(home, vm);
  }
}

/** Boots the plan's guest, saves it every way, and kills it. */
export async function runSpaceGuest(opts: SpaceOptions): Promise<SpaceGuestResult> {
  const { home, plan, log } = opts;
  const disk = join(opts.workDir, "data.qcow2");
  qcow2Copy(plan.rawDataDisk, disk);
  log(
    `${plan.kind}: booting a ${plan.memoryMiB} MiB guest, ${plan.params.memMiB} MiB anonymous, ` +
      `${mib(plan.dataFileBytes)} of files to cache (TCG)…`,
  );
  const { vm, agent } = await bootTestGuest(home, {
    name: "space",
    memoryMiB: plan.memoryMiB,
    params: plan.params,
    qcow2DataDisk: disk,
  });
  const stats = await agent.stats();
  agent.close();
  try {
    log(`${plan.kind}: QEMU's own migrate to a file, then ${ZSTD_TOOL}…`);
    const file = join(opts.workDir, "qemu-stream.mig");
    const { streamBytes, zstdBytes, saveMs, zstdMs } = await qemuSave(vm, file);
    await rm(file); // hundreds of MiB, and the guest's page cache is not the host's
    const snapwake: Record<SnapwakeRow, SaveMeasure | null> = {
      plain: null,
      dedup: null,
      incremental: null,
      freed: null,
      reported: null,
    };
    for (const step of snapwakeSteps(opts.laterSeconds)) {
      if (step.afterSeconds > 0) {
        log(`${plan.kind}: the guest runs on for ${step.afterSeconds} s…`);
        await new Promise((resolve) => setTimeout(resolve, step.afterSeconds * 1000));
      }
      log(`${plan.kind}: snapwake save, ${step.row}…`);
      const s = await step.run({ home, vm });
      snapwake[step.row] = {
        bytes: s.checkpoint.bytes,
        saveMs: s.wallMs,
        streamBytes: s.streamBytes,
      };
    }
    await killVm(home, vm);
    snapwake.reported = await reportingGuest(opts);
    return {
      guest: {
        kind: plan.kind,
        memoryMiB: plan.memoryMiB,
        anonMiB: plan.params.memMiB,
        dataFileBytes: plan.dataFileBytes,
        pageCacheBytes: stats.pageCacheBytes,
        filesOk: stats.filesOk,
        filesBad: stats.filesBad,
      },
      qemu: { streamBytes, zstdBytes, zstdTool: ZSTD_TOOL, saveMs, zstdMs },
      snapwake,
      diskRefs: await diskRefsOf(home, "dedup", plan.dataFileBytes),
    };
  } finally {
    await killVm(home, vm);
  }
}

/** What the disk references of checkpoint `name` left out, against the data on the disk. */
async function diskRefsOf(
  home: string,
  name: string,
  dataFileBytes: number,
): Promise<SpaceGuestResult["diskRefs"]> {
  const reader = await CheckpointReader.open(new CheckpointStore({ home }), name);
  const s = reader.manifest.statistics;
  const base = reader.manifest.layers.find((l) => l.backing === null);
  await reader.close();
  const diskBlocks = base === undefined ? 0 : (await new LayerStore(home).loadIndex(base)).size;
  return {
    pagesDisk: s.pagesDisk,
    diskRawBytes: s.diskRawBytes,
    pagesStored: s.pagesStored,
    pagesNonZero: s.pagesTotal - s.pagesZero,
    dataFilePages: Math.ceil(dataFileBytes / PAGE_SIZE_BYTES),
    diskBlocks,
  };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}
