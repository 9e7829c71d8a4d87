/**
 * The save's receiving end: parsed migration-stream records go into the checkpoint writer,
 * which it creates once the stream has listed its RAM blocks; pages QEMU sends again in a later
 * precopy round are kept as the checkpoint's write set (VEE'11 write tracking).
 */
import {
  beginCheckpoint,
  type CheckpointStore,
  type CheckpointWriter,
  type SharedPages,
} from "../checkpoint/index.ts";
import type { DiskDuplicates } from "../disk/index.ts";
import { QemuError } from "../errors.ts";
import { PAGE_SIZE_BYTES, WORKING_SET_PAGES_MAX } from "../limits.ts";
import type { DeviceState, RamBlock, RamSectionInfo } from "../qemu/migration/index.ts";
import type { VersionInfo } from "../qemu/qmp/index.ts";
import type { ManagedVm } from "../vm/index.ts";
import { runtimeOf } from "./live-safety.ts";
import type { NamedSave } from "./save.ts";

/** Receives parsed stream records and feeds the checkpoint writer (created once blocks are known). */
export class CheckpointSink {
  writer: CheckpointWriter | null = null;
  /** Set once the writer committed: the checkpoint is listed and the writer is spent. */
  committed = false;
  #configuration = new Uint8Array(0);
  #machine = "";
  #pages = 0;
  /** Per block, per page: 0 unseen, 1 seen once, 2 re-sent (recorded in writes). */
  #seen: Uint8Array[] = [];
  /** Pages QEMU sent again in a later precopy round, in re-send order: the write set. */
  readonly writes: { block: number; page: number }[] = [];
  readonly #store: CheckpointStore;
  readonly #opts: NamedSave;
  readonly #vm: ManagedVm;
  readonly #sources: { duplicates: DiskDuplicates | null; shared: SharedPages | null };
  /** The guest ran when the save began: a restore resumes it even if QEMU saved it paused. */
  readonly #guestRunning: boolean;
  /** Asked before the migration: a spooled stream is read after QEMU is done (ADR 0033). */
  readonly #version: VersionInfo;

  constructor(
    store: CheckpointStore,
    opts: NamedSave,
    vm: ManagedVm,
    sources: { duplicates: DiskDuplicates | null; shared: SharedPages | null },
    guestRunning: boolean,
    version: VersionInfo,
  ) {
    this.#guestRunning = guestRunning;
    this.#version = version;
    this.#store = store;
    this.#opts = opts;
    this.#vm = vm;
    this.#sources = sources;
  }

  configuration(config: { machine: string; raw: Uint8Array }): void {
    this.#configuration = config.raw.slice();
    this.#machine = config.machine;
  }

  async ramBlocks(blocks: readonly RamBlock[], ram: RamSectionInfo): Promise<void> {
    if (this.writer !== null)
      throw new QemuError("The migration stream listed its RAM blocks twice");
    const version = this.#version;
    const { duplicates, shared } = this.#sources;
    this.writer = await beginCheckpoint(this.#store, {
      name: this.#opts.name,
      vm: { ...this.#vm.spec, machine: this.#machine || this.#vm.spec.machine },
      qemu: { version: version.qemu, package: version.package, args: this.#vm.args },
      stream: {
        configuration: this.#configuration,
        machine: this.#machine,
        ram,
        guestRunning: this.#guestRunning,
      },
      ...(this.#opts.compressionLevel === undefined
        ? {}
        : { compressionLevel: this.#opts.compressionLevel }),
      ...(duplicates === null ? {} : { diskBlocks: duplicates }),
      ...(shared === null ? {} : { shared }),
      ...runtimeOf(version.qemu, this.#machine),
    });
    this.writer.setRamBlocks(blocks);
    this.#seen = blocks.map((b) => new Uint8Array(Math.ceil(b.lengthBytes / PAGE_SIZE_BYTES)));
  }

  page(blockIndex: number, pageIndex: number, data: Uint8Array): void | Promise<void> {
    this.#tick(blockIndex, pageIndex);
    return this.#need().putPage(blockIndex, pageIndex, data);
  }

  zeroPage(blockIndex: number, pageIndex: number, fill: number): void {
    this.#tick(blockIndex, pageIndex);
    this.#need().putZero(blockIndex, pageIndex, fill);
  }

  deviceState(state: DeviceState): void {
    this.#need().setDeviceState(state);
  }

  #tick(blockIndex: number, pageIndex: number): void {
    this.#noteWrite(blockIndex, pageIndex);
    this.#pages += 1;
    if (this.#pages % 8192 === 0) {
      const doneBytes = this.#pages * PAGE_SIZE_BYTES;
      this.#opts.onProgress?.({ phase: "receiving", doneBytes, totalBytes: null });
    }
  }

  /** A page seen before was dirtied during the save (VEE'11 / write tracking). */
  #noteWrite(block: number, page: number): void {
    const seen = this.#seen[block];
    if (seen === undefined) return; // the reader rejects unknown blocks before we get here
    const state = seen[page] ?? 0;
    if (state === 1 && this.writes.length < WORKING_SET_PAGES_MAX)
      this.writes.push({ block, page });
    if (state < 2) seen[page] = state + 1;
  }

  #need(): CheckpointWriter {
    if (this.writer === null)
      throw new QemuError("The migration stream sent pages before its RAM blocks");
    return this.writer;
  }
}
