/**
 * MigrationStreamWriter: writes a QEMU 7.2 migration stream, for restores where snapwake is
 * QEMU's migration source (docs/migration-protocol.md §1–§3, §6.7).
 *
 * Records are batched into ~256 KiB buffers before they reach the sink, so a page costs a
 * memcpy, not a syscall. Backpressure: a method returns a Promise only when it handed a batch
 * to a sink that is not ready for more; await it before writing again (`if (p) await p`).
 * With a BufferPool (and a sink that says when it is done with a batch: `writeThen`), batch
 * buffers are reused rather than allocated: a page server flushing a small part at a time
 * would otherwise allocate a 256 KiB buffer per part and spend its time collecting them.
 *
 * Invariants: a block's name is sent whenever the block differs from the previous record's
 * on this channel, CONTINUE otherwise; that memory persists across sections until
 * `resetContinuation()` (QEMU resets it at the postcopy discard step). Page records only go
 * inside an open RAM PART/END; everything else only between sections. Misuse is a bug
 * (assert), not an operating error. A pooled batch buffer goes back to its pool only when the
 * sink called `done` for it, so no buffer is rewritten while a queued write still holds it.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { type BufferPool, ByteReader, ByteWriter, latin1Encode } from "../../bytes/index.ts";
import { MIGRATION_WRITE_BATCH_BYTES, PAGE_SIZE_BYTES } from "../../limits.ts";
import { encodeCommand, encodePackaged } from "./commands.ts";
import {
  type CommandCode,
  FILE_MAGIC,
  FILE_VERSION,
  RAM_SECTION_IDSTR,
  RamFlag,
  Section,
} from "./constants.ts";
import type { DeviceState, RamBlock, RamSectionInfo } from "./records.ts";

/** Where the stream goes. Return a Promise to make the writer wait (backpressure). */
export interface ByteSink {
  write(bytes: Uint8Array): void | Promise<void>;
  /**
   * Optional: write, then call `done` exactly once when the sink no longer references `bytes`
   * (handed to the kernel, or dropped because the write failed). Required with a buffer pool.
   */
  writeThen?(bytes: Uint8Array, done: () => void): void | Promise<void>;
}

/** Bytes of one batch buffer: a batch of `batchBytes` plus one more page record. */
export function streamWriterBufferBytes(batchBytes = MIGRATION_WRITE_BATCH_BYTES): number {
  return batchBytes + PAGE_SIZE_BYTES + 512;
}

export interface StreamWriterOptions {
  /** Records buffered before a batch goes to the sink; default MIGRATION_WRITE_BATCH_BYTES. */
  readonly batchBytes?: number;
  /**
   * Batch buffers come from (and return to) this pool; the sink must implement writeThen.
   * Its buffers hold a full batch plus a page record, so a batch never grows out of them.
   */
  readonly pool?: BufferPool;
  /**
   * Sees every data page just before it is encoded and returns what to send: the page itself,
   * or an edited copy (the accessed-bit reset of proven page-table pages; docs/accessed-bits.md).
   * Callers only pass pages that passed their hash check.
   */
  readonly pageEdit?: PageEdit;
}

/** An edit of outgoing pages; returns `data` itself for a page it leaves alone. */
export interface PageEdit {
  apply(blockIndex: number, pageIndex: number, data: Uint8Array): Uint8Array;
}

export type MaybePromise = void | Promise<void>;

/** A ByteSink over a Node Writable that waits for 'drain' when the stream asks it to. */
export function sinkFromWritable(stream: Writable): ByteSink {
  return {
    write(bytes: Uint8Array): MaybePromise {
      if (stream.destroyed || stream.writableEnded) {
        // No 'drain' or 'close' would ever come to end the wait.
        throw new Error("Cannot write the migration stream: its sink is closed");
      }
      if (stream.write(bytes)) return;
      return new Promise<void>((resolve, reject) => {
        const settle = (error?: Error): void => {
          stream.off("drain", onDrain);
          stream.off("error", onError);
          stream.off("close", onClose);
          if (error === undefined) resolve();
          else reject(error);
        };
        const onDrain = (): void => settle();
        const onError = (error: Error): void => settle(error);
        const onClose = (): void =>
          settle(new Error("Cannot write the migration stream: its sink closed"));
        stream.on("drain", onDrain);
        stream.on("error", onError);
        stream.on("close", onClose);
      });
    },
  };
}

interface BlockOut {
  readonly lengthBytes: number;
  readonly pages: number;
  /** cstr8 name, pre-encoded: it is written every time the block changes. */
  readonly name: Uint8Array;
}

export class MigrationStreamWriter {
  readonly #sink: ByteSink;
  readonly #batchBytes: number;
  readonly #pool: BufferPool | null;
  readonly #pageEdit: PageEdit | null;
  #out: ByteWriter;
  /** With a pool: the pooled buffer #out writes into (unless it grew out of it). */
  #pooled: Uint8Array | null = null;
  #ram: RamSectionInfo | null = null;
  #blocks: readonly BlockOut[] = [];
  #sectionOpen = false;
  #lastBlock = -1;
  #flushedBytes = 0;

  /** `sink`: a ByteSink, or a Node Writable (a net.Socket) adapted by sinkFromWritable. */
  constructor(sink: ByteSink | Writable, options: StreamWriterOptions = {}) {
    // Writable's instanceof also recognises Duplex streams such as net.Socket.
    this.#sink = sink instanceof Writable ? sinkFromWritable(sink) : sink;
    this.#batchBytes = options.batchBytes ?? MIGRATION_WRITE_BATCH_BYTES;
    assert(this.#batchBytes > 0, "batch size is positive");
    const batchBufferBytes = streamWriterBufferBytes(this.#batchBytes);
    this.#pool = options.pool ?? null;
    this.#pageEdit = options.pageEdit ?? null;
    if (this.#pool === null) {
      this.#out = new ByteWriter(batchBufferBytes);
    } else {
      assert(this.#sink.writeThen !== undefined, "a pooled writer's sink says when it is done");
      assert(this.#pool.bufferBytes >= batchBufferBytes, "a pooled buffer holds a whole batch");
      this.#pooled = this.#pool.acquire();
      this.#out = new ByteWriter(this.#pooled);
    }
  }

  /** Bytes written so far, buffered ones included. */
  get bytesWritten(): number {
    return this.#flushedBytes + this.#out.length;
  }

  /** Magic "QEVM" and version 3. */
  header(): MaybePromise {
    this.#out.u32(FILE_MAGIC).u32(FILE_VERSION);
    return this.#maybeFlush();
  }

  /** The configuration item, verbatim as the reader captured it (0x07 type byte included). */
  configuration(raw: Uint8Array): MaybePromise {
    const type = new ByteReader(raw).u8();
    assert(type === Section.configuration, "configuration starts with its 0x07 type byte");
    return this.raw(raw);
  }

  /** RAM START: the MEM_SIZE block list, EOS and footer. Block indexes follow `blocks`. */
  ramStart(info: RamSectionInfo, blocks: readonly RamBlock[]): MaybePromise {
    assert(this.#ram === null, "one RAM START per stream");
    this.#between();
    this.#ram = info;
    this.#blocks = blocks.map((block) => {
      assert(block.lengthBytes > 0 && block.lengthBytes % PAGE_SIZE_BYTES === 0, "whole pages");
      assert(block.name.length > 0 && block.name.length <= 0xff, "block name fits cstr8");
      const name = new ByteWriter(block.name.length + 1).u8(block.name.length).latin1(block.name);
      const pages = block.lengthBytes / PAGE_SIZE_BYTES;
      return { lengthBytes: block.lengthBytes, pages, name: name.take() };
    });
    const totalBytes = blocks.reduce((sum, b) => sum + b.lengthBytes, 0);
    const idstr = latin1Encode(RAM_SECTION_IDSTR);
    const out = this.#out.u8(Section.start).u32(info.sectionId).u8(idstr.byteLength).bytes(idstr);
    out
      .u32(info.instanceId)
      .u32(info.versionId)
      .u64(totalBytes + RamFlag.memSize);
    for (const block of this.#blocks) out.bytes(block.name).u64(block.lengthBytes);
    this.#endSection(info.sectionId);
    return this.#maybeFlush();
  }

  /** Opens a RAM PART. `ram`, if given, must be the section of ramStart (a check). */
  beginRamPart(ram?: RamSectionInfo): MaybePromise {
    return this.#beginRam(Section.part, ram);
  }

  /** Opens the RAM END. `ram`, if given, must be the section of ramStart (a check). */
  beginRamEnd(ram?: RamSectionInfo): MaybePromise {
    return this.#beginRam(Section.end, ram);
  }

  /** A PAGE record; `data` is copied before this returns. */
  page(blockIndex: number, pageIndex: number, data: Uint8Array): MaybePromise {
    assert(data.byteLength === PAGE_SIZE_BYTES, "a page is 4 KiB");
    this.#recordHeader(blockIndex, pageIndex, RamFlag.page);
    this.#out.bytes(this.#pageEdit?.apply(blockIndex, pageIndex, data) ?? data);
    return this.#maybeFlush();
  }

  /** A ZERO record: the page is `fill` repeated (QEMU sends 0). */
  zeroPage(blockIndex: number, pageIndex: number, fill = 0): MaybePromise {
    this.#recordHeader(blockIndex, pageIndex, RamFlag.zero);
    this.#out.u8(fill);
    return this.#maybeFlush();
  }

  /** Closes the open RAM PART/END: EOS and footer. */
  endRamSection(): MaybePromise {
    assert(this.#sectionOpen && this.#ram !== null, "a RAM section is open");
    this.#sectionOpen = false;
    this.#endSection(this.#ram.sectionId);
    return this.#maybeFlush();
  }

  /** Forgets the last block, so the next record names its block (after postcopy discard). */
  resetContinuation(): void {
    this.#lastBlock = -1;
  }

  /** The device state: FULL sections and EOF verbatim, then the VMDESCRIPTION if asked. */
  deviceState(state: DeviceState, options: { readonly withVmdescription: boolean }): MaybePromise {
    this.#between();
    this.#out.bytes(state.sections);
    const json = state.vmdescription;
    if (options.withVmdescription && json !== null) {
      this.#out.u8(Section.vmdescription).u32(json.byteLength).bytes(json);
    }
    return this.#maybeFlush();
  }

  /** A command item (see commands.ts for the typed encoders). */
  command(command: CommandCode, payload?: Uint8Array): MaybePromise {
    return this.raw(encodeCommand(command, payload));
  }

  /** PACKAGED: the command and its blob (see buildPostcopyPackage). */
  packaged(blob: Uint8Array): MaybePromise {
    return this.raw(encodePackaged(blob));
  }

  /** Pre-encoded top-level items (commands from commands.ts), verbatim. */
  raw(bytes: Uint8Array): MaybePromise {
    this.#between();
    this.#out.bytes(bytes);
    return this.#maybeFlush();
  }

  /** The EOF item, for streams that end without a device state (after a postcopy package). */
  eof(): MaybePromise {
    this.#between();
    this.#out.u8(Section.eof);
    return this.#maybeFlush();
  }

  /**
   * Hands every buffered byte to the sink and waits for it. `onWritten`, if given, is called
   * once the sink is done with those bytes (with writeThen: handed to the kernel; at once if
   * nothing was buffered).
   */
  async flush(onWritten?: () => void): Promise<void> {
    const pending = this.#flushNow(onWritten);
    if (pending !== undefined) await pending;
  }

  #beginRam(type: typeof Section.part | typeof Section.end, ram?: RamSectionInfo): MaybePromise {
    assert(this.#ram !== null, "RAM START comes before its PART/END sections");
    assert(ram === undefined || ram.sectionId === this.#ram.sectionId, "same RAM section");
    this.#between();
    this.#sectionOpen = true;
    this.#out.u8(type).u32(this.#ram.sectionId);
    return this.#maybeFlush();
  }

  #recordHeader(blockIndex: number, pageIndex: number, flag: number): void {
    assert(this.#sectionOpen, "page records go inside a RAM PART or END");
    const block = this.#blocks[blockIndex];
    assert(block !== undefined, "block index is in the MEM_SIZE list");
    assert(
      Number.isInteger(pageIndex) && pageIndex >= 0 && pageIndex < block.pages,
      "page in block",
    );
    const word = pageIndex * PAGE_SIZE_BYTES + flag;
    if (blockIndex === this.#lastBlock) {
      this.#out.u64(word + RamFlag.continue);
    } else {
      this.#out.u64(word).bytes(block.name);
      this.#lastBlock = blockIndex;
    }
  }

  #endSection(sectionId: number): void {
    this.#out.u64(RamFlag.eos).u8(Section.footer).u32(sectionId);
  }

  #between(): void {
    assert(!this.#sectionOpen, "close the RAM section first (endRamSection)");
  }

  #maybeFlush(): MaybePromise {
    if (this.#out.length >= this.#batchBytes) return this.#flushNow();
  }

  #flushNow(onWritten?: () => void): MaybePromise {
    if (this.#out.length === 0) {
      onWritten?.();
      return;
    }
    if (this.#pool === null || this.#pooled === null) {
      const bytes = this.#out.take();
      this.#flushedBytes += bytes.byteLength;
      if (this.#sink.writeThen !== undefined) {
        return this.#sink.writeThen(bytes, () => onWritten?.());
      }
      const pending = this.#sink.write(bytes);
      if (onWritten !== undefined) {
        if (pending === undefined) onWritten();
        else pending.then(onWritten, onWritten);
      }
      return pending;
    }
    return this.#flushPooled(this.#pool, this.#pooled, onWritten);
  }

  #flushPooled(pool: BufferPool, pooled: Uint8Array, onWritten?: () => void): MaybePromise {
    const grew = this.#out.buffer !== pooled;
    const next = pool.acquire();
    const bytes = this.#out.handOff(next);
    this.#pooled = next;
    this.#flushedBytes += bytes.byteLength;
    // A batch that grew out of its pooled buffer was copied: that buffer is free already.
    if (grew) pool.release(pooled);
    let released = grew;
    const release = (): void => {
      assert(grew || !released, "the sink is done with a batch once");
      if (!released) pool.release(pooled);
      released = true;
    };
    const writeThen = this.#sink.writeThen;
    assert(writeThen !== undefined, "checked in the constructor");
    try {
      return writeThen.call(this.#sink, bytes, () => {
        release();
        onWritten?.();
      });
    } catch (error) {
      release(); // the sink refused the bytes: nothing references them
      throw error;
    }
  }
}
