/**
 * Reads a QEMU 7.2 precopy migration stream (docs/migration-protocol.md §1–§3, §13) as it
 * arrives:
 *
 *   header, [configuration], { command | RAM START | RAM PART }*, RAM END,
 *   device state (FULL sections, EOF, [VMDESCRIPTION]) up to the end of the transport.
 *
 * RAM pages go to the visitor in stream order (last record wins; the consumer overwrites).
 * The device state is opaque: FULL sections are not length-framed, so it runs from the byte
 * after the RAM END footer to transport EOF (a background-snapshot stream has no RAM END; its
 * device state starts at the first FULL/EOF after the RAM PARTs).
 *
 * Return path: if the stream opens one, PINGs are answered with PONG and SHUT(0) is sent at
 * the end. A QEMU source with a return path keeps the channel open until it gets SHUT, so
 * SHUT goes out as soon as the data ends with a complete VMDESCRIPTION, not only at EOF.
 *
 * Everything else is rejected with the offending byte offset: postcopy/COLO commands,
 * iterable sections other than RAM, xbzrle, compress, multifd, extra MEM_SIZE fields.
 */
import { ByteSource } from "../../bytes/index.ts";
import { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { DEVICE_STATE_BYTES_MAX } from "../../limits.ts";
import { assertNever } from "../../util/index.ts";
import { readConfiguration } from "./configuration.ts";
import {
  FILE_MAGIC,
  FILE_VERSION,
  FILE_VERSION_COMPAT,
  HEADER_BYTES,
  RAM_SECTION_IDSTR,
  RAM_SECTION_VERSION,
  SECTION_NAMES,
  Section,
  ShutStatus,
} from "./constants.ts";
import { DeviceBlobCollector, deviceSectionsOf } from "./device-state.ts";
import { readFooter, readMemSizeList, readRamRecords } from "./ram-section.ts";
import { RamTracker } from "./ram-tracker.ts";
import type { DeviceState, RamSectionInfo, StreamSummary, StreamVisitor } from "./records.ts";
import { encodePong, encodeShut } from "./return-path.ts";
import { readPrecopyCommand } from "./stream-commands.ts";

export interface ReadStreamOptions {
  /** Sends bytes back to the source (PONG, SHUT) if the stream opens a return path. */
  readonly returnPath?: (bytes: Uint8Array) => void | Promise<void>;
  /** Cap on the device state; DEVICE_STATE_BYTES_MAX unless lowered (tests). */
  readonly deviceStateBytesMax?: number;
}

/** Reads a whole stream, reporting RAM and device state to `visitor`; see the module doc. */
export async function readMigrationStream(
  source: AsyncIterable<Uint8Array>,
  visitor: StreamVisitor,
  options: ReadStreamOptions = {},
): Promise<StreamSummary> {
  const src = new ByteSource(source);
  try {
    return await new StreamReader(src, visitor, options).read();
  } finally {
    await src.close();
  }
}

/** Where the RAM data ended: after a RAM END, or at a FULL/EOF whose type byte was read. */
type RamEnd =
  | { readonly kind: "end" }
  | { readonly kind: "background-snapshot"; readonly type: number };

const hex = (n: number): string => `0x${n.toString(16)}`;

class StreamReader {
  readonly #src: ByteSource;
  readonly #visitor: StreamVisitor;
  readonly #options: ReadStreamOptions;
  #version = 0;
  #machine: string | null = null;
  #ram: RamTracker | null = null;
  #returnPathOpened = false;
  #postcopyAdvised = false;
  #switchoverStart = false;
  #shutSent = false;

  constructor(src: ByteSource, visitor: StreamVisitor, options: ReadStreamOptions) {
    this.#src = src;
    this.#visitor = visitor;
    this.#options = options;
  }

  async read(): Promise<StreamSummary> {
    await this.#readHeader();
    const ramEnd = await this.#readItems();
    const ram = this.#ram;
    if (ram === null) throw new DecodeError("Stream has no RAM section", this.#src.offset);
    const blobStart = this.#src.offset - (ramEnd.kind === "end" ? 0 : 1);
    const state = await this.#readDeviceState(blobStart, ramEnd);
    const pending = this.#visitor.deviceState(state);
    if (pending !== undefined) await pending;
    if (this.#returnPathOpened && !this.#shutSent) await this.#shut();
    const names = deviceSectionsOf(state, blobStart);
    return {
      version: this.#version,
      machine: this.#machine,
      ram: ram.info,
      blocks: ram.summary(),
      records: ram.records,
      streamBytes: this.#src.offset,
      deviceBlobBytes: this.#src.offset - blobStart,
      deviceSections: names.sections,
      deviceSectionsFrom: names.from,
      returnPathOpened: this.#returnPathOpened,
      postcopyAdvised: this.#postcopyAdvised,
      switchoverStart: this.#switchoverStart,
      ramEnd: ramEnd.kind,
    };
  }

  async #readHeader(): Promise<void> {
    const header = await this.#src.read(HEADER_BYTES, "the stream header");
    const magic = header.u32();
    if (magic !== FILE_MAGIC) {
      throw new DecodeError(
        `Not a QEMU migration stream: magic ${hex(magic)}, expected ${hex(FILE_MAGIC)} ("QEVM")`,
        0,
      );
    }
    const version = header.u32();
    if (version !== FILE_VERSION) {
      const why = version === FILE_VERSION_COMPAT ? " (obsolete; QEMU refuses it too)" : "";
      throw new UnsupportedStreamError(
        `Stream version ${version} is unsupported${why}: reads version ${FILE_VERSION}`,
        4,
      );
    }
    this.#version = version;
  }

  /** Reads items up to the end of the RAM data. */
  async #readItems(): Promise<RamEnd> {
    for (let index = 0; ; index++) {
      const at = this.#src.offset;
      if ((await this.#src.peekU8()) === null) {
        const where = this.#ram === null ? "before its RAM section" : "before its RAM END section";
        throw new DecodeError(`Truncated stream: it ends ${where}`, at);
      }
      const type = (await this.#src.read(1, "a section type")).u8();
      switch (type) {
        case Section.configuration:
          if (index !== 0) {
            throw new DecodeError(
              "Configuration section after the first item: it must follow the header",
              at,
            );
          }
          this.#machine = await this.#readConfiguration();
          break;
        case Section.start:
          await this.#readRamStart(at);
          break;
        case Section.part:
        case Section.end:
          await this.#readRamPartOrEnd(type, at);
          if (type === Section.end) return { kind: "end" };
          break;
        case Section.command:
          await this.#readCommand(at);
          break;
        case Section.full:
        case Section.eof:
          if (this.#ram === null) {
            throw new UnsupportedStreamError(
              `${SECTION_NAMES.get(type)} item before the RAM section`,
              at,
            );
          }
          return { kind: "background-snapshot", type };
        default:
          throw unexpectedItem(type, at);
      }
    }
  }

  async #readConfiguration(): Promise<string> {
    const config = await readConfiguration(this.#src);
    this.#visitor.configuration?.(config);
    return config.machine;
  }

  async #readRamStart(at: number): Promise<void> {
    const head = await this.#src.read(5, "a section START header");
    const sectionId = head.u32();
    const idLength = head.u8();
    const idstr = (await this.#src.read(idLength, "a section name")).latin1(idLength);
    const ids = await this.#src.read(8, "a section's instance and version");
    const info: RamSectionInfo = { sectionId, instanceId: ids.u32(), versionId: ids.u32() };
    if (idstr !== RAM_SECTION_IDSTR) {
      throw new UnsupportedStreamError(
        `Section START for "${idstr}": only RAM may be iterable (no block migration, ` +
          "dirty bitmaps or VFIO)",
        at,
      );
    }
    if (this.#ram !== null) throw new DecodeError("Second RAM START section", at);
    if (info.versionId !== RAM_SECTION_VERSION) {
      throw new UnsupportedStreamError(
        `RAM section version ${info.versionId} is unsupported: reads ${RAM_SECTION_VERSION}`,
        at,
      );
    }
    const blocks = await readMemSizeList(this.#src);
    await readFooter(this.#src, sectionId, "the RAM START section");
    this.#ram = new RamTracker(info, blocks);
    const pending = this.#visitor.ramBlocks(blocks, info);
    if (pending !== undefined) await pending;
  }

  async #readRamPartOrEnd(type: number, at: number): Promise<void> {
    const what = `a section ${SECTION_NAMES.get(type)?.toUpperCase()}`;
    const sectionId = (await this.#src.read(4, `${what} header`)).u32();
    const ram = this.#ram;
    if (ram === null || sectionId !== ram.info.sectionId) {
      const ramId = ram === null ? "none yet" : `${ram.info.sectionId}`;
      throw new DecodeError(`${what} for section ${sectionId}, which is not RAM (${ramId})`, at);
    }
    await readRamRecords(this.#src, ram, this.#visitor);
    await readFooter(
      this.#src,
      sectionId,
      `the RAM ${SECTION_NAMES.get(type)?.toUpperCase()} section`,
    );
  }

  async #readCommand(at: number): Promise<void> {
    const command = await readPrecopyCommand(this.#src, at);
    switch (command.kind) {
      case "open-return-path":
        this.#returnPathOpened = true; // a second one is ignored, as QEMU does
        return;
      case "ping":
        if (!this.#returnPathOpened) throw new DecodeError("PING with no return path open", at);
        await this.#send(encodePong(command.value));
        return;
      case "postcopy-advise":
        this.#postcopyAdvised = true;
        return;
      case "switchover-start":
        this.#switchoverStart = true;
        return;
      default:
        return assertNever(command, "stream command");
    }
  }

  async #readDeviceState(blobStart: number, ramEnd: RamEnd): Promise<DeviceState> {
    const max = this.#options.deviceStateBytesMax ?? DEVICE_STATE_BYTES_MAX;
    const blob = new DeviceBlobCollector(blobStart, max);
    if (ramEnd.kind === "background-snapshot") blob.append(Uint8Array.of(ramEnd.type));
    let shutAtBytes = -1;
    for (
      let chunk = await this.#src.nextChunk();
      chunk !== null;
      chunk = await this.#src.nextChunk()
    ) {
      if (shutAtBytes !== -1) {
        throw new DecodeError("Stream continues after its VMDESCRIPTION", blobStart + shutAtBytes);
      }
      blob.append(chunk);
      // A source with a return path waits for SHUT before it closes the stream.
      if (this.#returnPathOpened && blob.endsWithVmdescription()) {
        await this.#shut();
        shutAtBytes = blob.length;
      }
    }
    return blob.finish();
  }

  async #shut(): Promise<void> {
    this.#shutSent = true;
    await this.#send(encodeShut(ShutStatus.ok));
  }

  async #send(bytes: Uint8Array): Promise<void> {
    const send = this.#options.returnPath;
    if (send === undefined) return;
    const pending = send(bytes);
    if (pending !== undefined) await pending;
  }
}

function unexpectedItem(type: number, at: number): DecodeError {
  const name = SECTION_NAMES.get(type);
  if (name === undefined) return new DecodeError(`Unknown section type ${hex(type)}`, at);
  return new DecodeError(
    `Unexpected ${name} item (${hex(type)}) at the top level of the stream`,
    at,
  );
}
