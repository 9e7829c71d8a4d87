/**
 * Eager restore: a new QEMU is started from the checkpoint's VM spec with `-incoming defer`,
 * and snapwake acts as its migration source, replaying the checkpoint as one precopy stream.
 *
 * QEMU starts on the verified manifest alone, while this process opens and checks the page map
 * and the device state (QEMU's start and the checkpoint's opening overlap, as in a lazy
 * restore: ADR 0015, 0030). The target's life around the stream (the loopback pair, QEMU's
 * spawn, `migrate-incoming`, the wait for `completed`, the kill on failure) is
 * restoreByPrecopy's, which the mapped restore (mapped.ts) shares.
 *
 * The main RAM block of an x86 `pc` or `q35` checkpoint does not go in the stream: QEMU backs
 * it with a memfd, or a file in the RAM directory (ram-dir.ts, ADR 0035), and this process
 * writes the verified pages into it while QEMU starts (guest-ram.ts, ADR 0034); the stream
 * carries the rest (stream-beside-block.ts).
 *
 * Invariants: the manifest, page map and device state are verified before any byte is sent to
 * QEMU, and a failure there kills the QEMU already started; every chunk is hash-checked before
 * any of its pages is sent or written, so a corrupt chunk stops the restore (QEMU is killed,
 * its state dir removed) and the guest never runs on a wrong page; QEMU gets no byte of the
 * stream before every page of a block QEMU shares is written, so it loads, and runs the guest, on
 * complete RAM. The caller (restore.ts) holds the checkpoint for reading, so the manifest QEMU
 * started from is the one the reader opens.
 */
import type { Socket } from "node:net";
import { CheckpointReader, CheckpointStore, ChunkWorkers } from "../checkpoint/index.ts";
import { manifestOf } from "../checkpoint/read/checkpoint-files.ts";
import { UsageError } from "../errors.ts";
import { RESTORE_EAGER_RAM_WORKERS, RESTORE_EAGER_WORKERS } from "../limits.ts";
import type { ProgressListener } from "../progress.ts";
import type { DeviceState } from "../qemu/migration/index.ts";
import { asError } from "../util/index.ts";
import {
  killVm,
  type ManagedVm,
  QEMU_INCOMING_FD,
  type QemuInstall,
  type SharedRam,
} from "../vm/index.ts";
import { PC_RAM_BLOCK } from "../wss/guest-physical.ts";
import type { AccessedBitsResetReport } from "../wss/index.ts";
import { resetFor } from "./accessed-bits.ts";
import type { BlockPagesWritten } from "./block-pages.ts";
import { writeBlockPages } from "./block-pages.ts";
import { pooledSocketSink, type SendCounts, sendCheckpoint } from "./eager-send.ts";
import { findQemuRam, memfdRefusal, type RamSearch } from "./guest-ram.ts";
import { incomingPair } from "./incoming.ts";
import { chooseRamDir } from "./ram-dir.ts";
import { streamBesideBlock } from "./stream-beside-block.ts";
import { replayInfo } from "./stream-info.ts";
import {
  type RestoredVm,
  restoredVm,
  startRestoreTarget,
  type TargetCheckpoint,
  type TargetOptions,
  waitIncomingDone,
} from "./target.ts";

export interface EagerRestoreOptions {
  readonly home: string;
  readonly checkpoint: string;
  /** Name of the new managed VM; default: the saved VM's name. */
  readonly vmName?: string;
  /** The QEMU to restore on; default: the one the checkpoint's VM spec names. */
  readonly qemu?: QemuInstall;
  /**
   * Default true: the page-table pages the checkpoint's save proved leave with their Accessed
   * bits cleared, so the VM's next save estimates what it touched since this restore
   * (docs/accessed-bits.md). false sends every page exactly as stored.
   */
  readonly resetAccessedBits?: boolean;
  /**
   * Default true: an x86 `pc` or `q35` checkpoint's main RAM block is written by this process
   * into QEMU's memfd (ADR 0034). false sends every page in QEMU's stream, as QEMU's own
   * `-incoming` loads a saved stream.
   */
  readonly writeGuestRam?: boolean;
  /**
   * A directory on a tmpfs mounted with huge pages (ADR 0035): the RAM this process writes goes
   * into a file QEMU makes there, in 2 MiB pages, instead of a memfd. Checked first: a missing
   * directory or another file system is a UsageError; no huge pages or too little room, a
   * memfd and a note.
   */
  readonly ramDir?: string;
  readonly onProgress?: ProgressListener;
  /** Kills QEMU (the restore then fails and cleans up); restore.ts turns it into its reason. */
  readonly signal?: AbortSignal;
}

export interface EagerRestoreResult {
  readonly vm: RestoredVm;
  readonly mode: "eager";
  /** From the call until QEMU reported the incoming migration completed. */
  readonly wallMs: number;
  readonly dataPages: number;
  readonly zeroPages: number;
  /** Migration stream bytes sent to QEMU. */
  readonly streamBytes: number;
  /**
   * How the main RAM block reached QEMU: written by this process into QEMU's memfd (x86 `pc`
   * and `q35` checkpoints, ADR 0034) or into its file in the RAM directory (`ramDir`, ADR
   * 0035), or in the stream (other machines).
   */
  readonly guestRam: "memfd" | "ram-dir" | "stream";
  /**
   * Why a `pc` or `q35` checkpoint's RAM did not go where it was to go: in the stream after all
   * (QEMU's memfd out of reach, or the spec's extra arguments set memory up), or in a memfd
   * instead of the RAM directory given (no huge pages there, too little room); else null.
   */
  readonly guestRamNote: string | null;
  readonly accessedBits: AccessedBitsResetReport;
}

/** Restores a checkpoint eagerly into a new managed VM, running as it was saved. */
export async function restoreEager(opts: EagerRestoreOptions): Promise<EagerRestoreResult> {
  const started = performance.now();
  const target = { name: opts.checkpoint, manifest: await manifestOf(opts.home, opts.checkpoint) };
  const refusal = memfdRefusal(target.manifest.vm);
  if (opts.writeGuestRam === false && opts.ramDir !== undefined)
    throw new UsageError(
      "A RAM directory is for RAM this process writes: not with writeGuestRam false",
    );
  const ramBlock =
    opts.writeGuestRam === false || refusal !== null
      ? -1
      : target.manifest.ramBlocks.findIndex((b) => b.name === PC_RAM_BLOCK);
  const sizeBytes = target.manifest.ramBlocks[ramBlock]?.lengthBytes ?? 0;
  const place =
    ramBlock < 0 || opts.ramDir === undefined ? null : await chooseRamDir(opts.ramDir, sizeBytes);
  const dir = place !== null && "dir" in place ? { dir: place.dir } : {};
  const sharedRam: SharedRam = { id: PC_RAM_BLOCK, sizeBytes, ...dir };
  const note = place !== null && "note" in place ? place.note : null;
  // They load while QEMU starts, and decode chunks while this thread writes RAM or feeds QEMU.
  const workers = ChunkWorkers.start(
    ramBlock < 0 ? RESTORE_EAGER_WORKERS : RESTORE_EAGER_RAM_WORKERS,
  );
  try {
    if (ramBlock < 0) return await restoreByStream(opts, workers, started, target, refusal);
    return await restoreIntoSharedRam(opts, workers, started, target, ramBlock, sharedRam, note);
  } finally {
    await workers.close();
  }
}

/**
 * Every page in the stream: `writeGuestRam: false`, a machine without a pc.ram block, or a
 * spec whose extra arguments handle memory themselves (`refusal`, then the result's note).
 */
async function restoreByStream(
  opts: EagerRestoreOptions,
  workers: ChunkWorkers,
  started: number,
  target: TargetCheckpoint,
  refusal: string | null,
): Promise<EagerRestoreResult> {
  const opening = openCheckpoint(opts);
  opening.catch(() => undefined); // awaited below, after QEMU's spawn
  try {
    const { vm, sent } = await restoreByPrecopy(opts, target, {}, async (socket) => {
      const opened = await opening;
      const counts = await sendAll(socket, opened, workers, opts.onProgress);
      return { guestRunning: replayInfo(opened.reader).guestRunning, sent: counts };
    });
    return {
      vm,
      mode: "eager",
      wallMs: performance.now() - started,
      ...sent,
      guestRam: "stream",
      guestRamNote: refusal,
      accessedBits: (await opening).reset.report(),
    };
  } finally {
    await opening.then(
      ({ reader }) => reader.close(),
      () => undefined,
    );
  }
}

/**
 * Block `ramBlock` written into `sharedRam`, QEMU's memfd or its file in the RAM directory
 * (guest-ram.ts, ADR 0034, 0035; `note` says why not there when one was asked for), from the
 * moment QEMU has made it, then the stream beside it: QEMU loads that only once every page of
 * the block is in. RAM out of this process's reach (a QEMU wrapper that does not exec it,
 * another user's QEMU) is not an error: nothing was written, and every page goes in the stream
 * instead.
 */
async function restoreIntoSharedRam(
  opts: EagerRestoreOptions,
  workers: ChunkWorkers,
  started: number,
  target: TargetCheckpoint,
  ramBlock: number,
  sharedRam: SharedRam,
  note: string | null,
): Promise<EagerRestoreResult> {
  const opening = openCheckpoint(opts);
  opening.catch(() => undefined); // awaited below
  // A failed restore stops the writes at once rather than let them fill RAM nobody runs.
  const failed = new AbortController();
  const signal = anySignal(failed.signal, opts.signal);
  const ram: { search?: RamSearch; writing?: Promise<BlockPagesWritten> } = {};
  const onSpawn = (pid: number): void => {
    const search = findQemuRam(pid, sharedRam, signal);
    const source = { blockIndex: ramBlock, onProgress: opts.onProgress, phase: RAM_PHASE };
    ram.search = search;
    ram.writing = Promise.all([search.found, opening]).then(([file, { reader }]) =>
      writeBlockPages(file, { ...source, reader }, sharedRam.sizeBytes, workers, signal),
    );
    ram.writing.catch(() => undefined); // awaited below
  };
  const feed = async (socket: Socket): Promise<{ guestRunning: boolean; sent: RamSent }> => {
    const { search, writing } = ram;
    if (search === undefined || writing === undefined) throw new Error("QEMU was not spawned");
    search.qemuUp();
    const file = await search.found.catch((error: unknown) => {
      if (signal.aborted) throw error;
      return asError(error).message; // out of reach: no page was written
    });
    const opened = await opening;
    const guestRunning = replayInfo(opened.reader).guestRunning;
    if (typeof file === "string") {
      const counts = await sendAll(socket, opened, workers, opts.onProgress);
      return { guestRunning, sent: { ...counts, guestRam: "stream", guestRamNote: file } };
    }
    const written = await writing;
    const stream = await streamBesideBlock(opened, ramBlock, file);
    await pooledSocketSink(socket).write(stream.bytes);
    socket.end();
    const sent: RamSent = {
      dataPages: written.dataPages + stream.others.dataPages,
      zeroPages: written.zeroPages + stream.others.zeroPages,
      streamBytes: stream.bytes.byteLength,
      guestRam: sharedRam.dir === undefined ? "memfd" : "ram-dir",
      guestRamNote: note,
    };
    return { guestRunning, sent };
  };
  try {
    const { vm, sent } = await restoreByPrecopy(opts, target, { sharedRam, onSpawn }, feed);
    return {
      vm,
      mode: "eager",
      wallMs: performance.now() - started,
      ...sent,
      accessedBits: (await opening).reset.report(),
    };
  } finally {
    failed.abort(new Error("the eager restore ended")); // ends a search still looking, too
    await ram.writing?.catch(() => undefined); // no write may be in flight once it closes
    await ram.search?.found.then(
      (file) => file.close(),
      () => undefined,
    );
    await opening.then(
      ({ reader }) => reader.close(),
      () => undefined,
    );
  }
}

type RamSent = SendCounts & Pick<EagerRestoreResult, "guestRam" | "guestRamNote">;

/** Every page of the checkpoint on `socket`, then its end. */
function sendAll(
  socket: Socket,
  { reader, device, reset }: Opened,
  workers: ChunkWorkers,
  onProgress: ProgressListener | undefined,
): Promise<SendCounts> {
  return sendCheckpoint(reader, socket, device, {
    workers,
    pageEdit: reset,
    ...(onProgress === undefined ? {} : { onProgress }),
  });
}

/** The progress phase while an eager restore writes the guest's RAM. */
const RAM_PHASE = "writing guest RAM";

function anySignal(a: AbortSignal, b: AbortSignal | undefined): AbortSignal {
  return b === undefined ? a : AbortSignal.any([a, b]);
}

/**
 * A restore target fed one precopy stream over the loopback pair (ADR 0030), for eager and
 * mapped restores: QEMU started from `target` with its end as fd 3 (and `how`), then
 * `migrate-incoming fd:3`; `feed` writes the stream on our end and ends it; then QEMU's
 * `completed`, and a guest saved running runs. Any failure, `feed`'s included, destroys our end
 * first (QEMU's reset then has no socket to reach) and kills QEMU.
 */
export async function restoreByPrecopy<T>(
  opts: Pick<EagerRestoreOptions, "home" | "vmName" | "qemu" | "signal">,
  target: TargetCheckpoint,
  how: Pick<TargetOptions, "ramFile" | "sharedRam" | "onSpawn">,
  feed: (socket: Socket) => Promise<{ readonly guestRunning: boolean; readonly sent: T }>,
): Promise<{ vm: RestoredVm; sent: T }> {
  const pair = await incomingPair();
  let vm: ManagedVm;
  try {
    vm = await startRestoreTarget("eager", opts.home, target, opts.vmName, {
      qemu: opts.qemu,
      signal: opts.signal,
      incomingSocket: pair.qemuEnd,
      ...how,
    });
  } catch (error) {
    pair.ours.destroy();
    throw error;
  } finally {
    pair.qemuEnd.destroy(); // QEMU has its own copy: its exit must end the connection
  }
  const socket = pair.ours;
  try {
    await vm.qmp.execute("migrate-incoming", { uri: `fd:${QEMU_INCOMING_FD}` });
    const { guestRunning, sent } = await feed(socket);
    await waitIncomingDone(vm.qmp);
    await resumeIfSavedRunning(vm, guestRunning);
    return { vm: restoredVm(vm), sent };
  } catch (error) {
    socket.destroy();
    await killVm(opts.home, vm);
    throw error;
  } finally {
    socket.destroy();
    vm.qmp.close();
  }
}

export interface Opened {
  readonly reader: CheckpointReader;
  readonly device: DeviceState;
  readonly reset: Awaited<ReturnType<typeof resetFor>>;
}

/** The checkpoint opened and checked: its page map, device state and page-table edits. */
export async function openCheckpoint(opts: EagerRestoreOptions): Promise<Opened> {
  const reader = await CheckpointReader.open(
    new CheckpointStore({ home: opts.home }),
    opts.checkpoint,
  );
  try {
    const device = await reader.deviceState();
    const reset = await resetFor(opts, reader);
    return { reader, device, reset };
  } catch (error) {
    await reader.close();
    throw error;
  }
}

/** QEMU restores the run state it saved; a guest paused only for its save runs again. */
async function resumeIfSavedRunning(vm: ManagedVm, guestRunning: boolean): Promise<void> {
  if (!guestRunning) return;
  const status = await vm.qmp.execute("query-status", {});
  if (!status.running) await vm.qmp.execute("cont", {});
}
