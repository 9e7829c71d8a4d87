/**
 * Mapped restore (ADR 0032): the new QEMU maps the checkpoint's main RAM block copy-on-write
 * from a RAM image (ram-image.ts) instead of loading it, so no byte of that block is copied
 * before the guest runs. The migration stream carries only the other RAM blocks (firmware,
 * video: ~0.5 MiB), the page tables the accessed-bit reset clears, and the device state.
 *
 * The image is built on the checkpoint's first mapped restore from verified pages, then kept;
 * later restores start QEMU on it at once and check every region of it against its sums while
 * QEMU starts. Restores of one checkpoint share the image's pages in the page cache until the
 * guest writes them.
 *
 * Invariants: QEMU loads the stream (and so the guest runs) only once the image it mapped
 * matched every region's sum in this restore, or was built from verified pages by it; an image
 * that fails its check is removed and built again, once; QEMU gets the very file that was
 * checked (or built), open, as its fd 4, and an image is never written once it has its name
 * (ram-image.ts). As in an eager restore (eager.ts), a failure kills the QEMU started, and the
 * caller holds the checkpoint for reading.
 */
import { CheckpointStore, ChunkWorkers } from "../checkpoint/index.ts";
import { manifestOf } from "../checkpoint/read/checkpoint-files.ts";
import { UsageError } from "../errors.ts";
import { RESTORE_MAPPED_WORKERS } from "../limits.ts";
import { PC_RAM_BLOCK } from "../wss/guest-physical.ts";
import type { AccessedBitsResetReport } from "../wss/index.ts";
import {
  type EagerRestoreOptions,
  type Opened,
  openCheckpoint,
  restoreByPrecopy,
} from "./eager.ts";
import { pooledSocketSink } from "./eager-send.ts";
import {
  buildImage,
  checkImage,
  imageKeyOf,
  type OpenImage,
  openKeptImage,
  ramImagePaths,
  removeImage,
} from "./ram-image.ts";
import { streamBesideBlock } from "./stream-beside-block.ts";
import { replayInfo } from "./stream-info.ts";
import type { RestoredVm, TargetCheckpoint } from "./target.ts";

export interface MappedRestoreResult {
  readonly vm: RestoredVm;
  readonly mode: "mapped";
  /** From the call until QEMU reported the incoming migration completed. */
  readonly wallMs: number;
  readonly image: {
    readonly path: string;
    readonly bytes: number;
    /** This restore built the image: the checkpoint's first mapped restore, or a failed check. */
    readonly built: boolean;
    /** Why the kept image was not used, when there was one; else null. */
    readonly rebuiltBecause: string | null;
    readonly buildMs: number;
    /** Checking the kept image's regions (0 when built here), alone; it overlaps QEMU's start. */
    readonly checkMs: number;
  };
  /** Pages in the stream: the other RAM blocks and the reset page tables. */
  readonly pagesSent: number;
  /** Migration stream bytes sent to QEMU. */
  readonly streamBytes: number;
  readonly accessedBits: AccessedBitsResetReport;
}

type Attempt =
  | { readonly kind: "done"; readonly result: MappedRestoreResult }
  | { readonly kind: "bad image"; readonly problem: string };

/** Restores a checkpoint with its RAM mapped from its image into a new managed VM. */
export async function restoreMapped(opts: EagerRestoreOptions): Promise<MappedRestoreResult> {
  const started = performance.now();
  const workers = ChunkWorkers.start(RESTORE_MAPPED_WORKERS);
  try {
    const first = await attempt(opts, workers, started, null);
    if (first.kind === "done") return first.result;
    await removeImage(opts.home, opts.checkpoint);
    const second = await attempt(opts, workers, started, first.problem);
    if (second.kind === "done") return second.result;
    throw new Error(
      `The RAM image of "${opts.checkpoint}" failed its check right after it was built ` +
        `(${second.problem}): the disk under the snapwake home may be failing`,
    );
  } finally {
    await workers.close();
  }
}

/** One restore: with the kept image if it fits the checkpoint, else with one built here. */
async function attempt(
  opts: EagerRestoreOptions,
  workers: ChunkWorkers,
  started: number,
  rebuiltBecause: string | null,
): Promise<Attempt> {
  const { home, checkpoint } = opts;
  const manifest = await manifestOf(home, checkpoint);
  const { key, blockIndex } = await imageKeyOf(home, checkpoint, manifest);
  if (blockIndex < 0) {
    const names = manifest.ramBlocks.map((b) => b.name).join(", ");
    throw new UsageError(
      `A mapped restore maps the RAM block ${PC_RAM_BLOCK} (x86 pc and q35 machines); ` +
        `"${checkpoint}" has ${names}: restore it with --mode eager`,
    );
  }
  const opening = openCheckpoint(opts);
  opening.catch(() => undefined); // awaited below
  let image: OpenImage | null = null;
  let buildMs = 0;
  try {
    image = await openKeptImage(home, key);
    if (image === null) {
      const t = performance.now();
      const { reader } = await opening;
      const store = new CheckpointStore({ home });
      const source = { reader, blockIndex, store, onProgress: opts.onProgress };
      image = await buildImage(home, key, source, workers, opts.signal);
      buildMs = performance.now() - t;
    }
    const target = { name: checkpoint, manifest };
    const how = { image, blockIndex, built: buildMs > 0, opening };
    const run = await restoreOn(opts, target, how, workers);
    if (run.kind === "bad image") return run;
    const path = ramImagePaths(home, checkpoint).image;
    const imageInfo = { path, bytes: key.lengthBytes, built: buildMs > 0, rebuiltBecause };
    return {
      kind: "done",
      result: {
        vm: run.vm,
        mode: "mapped",
        wallMs: performance.now() - started,
        image: { ...imageInfo, buildMs, checkMs: run.checkMs },
        pagesSent: run.pagesSent,
        streamBytes: run.streamBytes,
        accessedBits: run.accessedBits,
      },
    };
  } finally {
    await image?.file.close(); // restoreOn returns only once no check reads it
    await opening.then(
      ({ reader }) => reader.close(),
      () => undefined,
    );
  }
}

type Run =
  | { readonly kind: "bad image"; readonly problem: string }
  | {
      readonly kind: "done";
      readonly vm: RestoredVm;
      readonly checkMs: number;
      readonly pagesSent: number;
      readonly streamBytes: number;
      readonly accessedBits: AccessedBitsResetReport;
    };

/**
 * QEMU started on the open image (checked meanwhile unless `built`), the stream made meanwhile
 * and sent once the check passed. Returns only once no check job reads the image any more.
 */
async function restoreOn(
  opts: EagerRestoreOptions,
  target: TargetCheckpoint,
  how: { image: OpenImage; blockIndex: number; built: boolean; opening: Promise<Opened> },
  workers: ChunkWorkers,
): Promise<Run> {
  const { image, blockIndex, built, opening } = how;
  const checkStarted = performance.now();
  let checkMs = 0;
  const checking = built
    ? Promise.resolve(null)
    : checkImage(opts.home, image, workers, opts.signal).then((problem) => {
        checkMs = performance.now() - checkStarted;
        return problem;
      });
  checking.catch(() => undefined); // awaited on every path below
  // The stream is made while the image is checked; it is sent only once the check passed. The
  // image is complete and never written once named: its tables read here are what it checks.
  const streaming = opening.then((opened) => streamBesideBlock(opened, blockIndex, image.file));
  streaming.catch(() => undefined); // awaited below
  const { sums } = image;
  const ramFile = { id: sums.block, sizeBytes: sums.lengthBytes, fd: image.file.fd };
  try {
    const { vm, sent } = await restoreByPrecopy(opts, target, { ramFile }, async (socket) => {
      // QEMU waits on its end of the socket: no byte goes there before the check passed.
      const stream = await streaming;
      const problem = await checking;
      if (problem !== null) throw new ImageCheckFailed(problem);
      await pooledSocketSink(socket).write(stream.bytes);
      socket.end();
      return { guestRunning: replayInfo((await opening).reader).guestRunning, sent: stream };
    });
    return {
      kind: "done",
      vm,
      checkMs,
      pagesSent: sent.pagesSent,
      streamBytes: sent.bytes.byteLength,
      accessedBits: (await opening).reset.report(),
    };
  } catch (error) {
    if (error instanceof ImageCheckFailed) return { kind: "bad image", problem: error.problem };
    throw error;
  } finally {
    await checking.catch(() => undefined); // no job may still read the image once it closes
    await streaming.catch(() => undefined);
  }
}

/** The kept image failed its check: restoreByPrecopy killed QEMU, the image is built again. */
class ImageCheckFailed extends Error {
  readonly problem: string;
  constructor(problem: string) {
    super(`The RAM image failed its check: ${problem}`);
    this.problem = problem;
  }
}
