/**
 * The configuration section (docs/migration-protocol.md §1.2): `0x07, be32 len, machine
 * name, subsection*`. It has no section id and no footer; its subsections are recognised by their
 * 0x05 type byte (a top-level item never starts with 0x05). Kept verbatim for replay.
 *
 * Rejected: any validated capability (7.2 validates only x-ignore-shared, whose MEM_SIZE
 * list carries extra fields), a target page size other than 4 KiB, unknown subsections.
 */
import { ByteReader, type ByteSource, ByteWriter, latin1Decode } from "../../bytes/index.ts";
import { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { CONFIG_CAPABILITIES_MAX, MACHINE_NAME_BYTES_MAX } from "../../limits.ts";
import { CONFIG_UUID_BYTES, ConfigSubsection, Section, TARGET_PAGE_BITS } from "./constants.ts";

export interface Configuration {
  readonly machine: string;
  /** The whole item including the 0x07 type byte. */
  readonly raw: Uint8Array;
}

/** Reads the configuration item; its 0x07 type byte was just consumed. */
export async function readConfiguration(src: ByteSource): Promise<Configuration> {
  const raw = new ByteWriter(64).u8(Section.configuration);
  const lengthField = await readInto(src, raw, 4, "the configuration's machine name length");
  const length = lengthField.u32();
  if (length === 0 || length > MACHINE_NAME_BYTES_MAX) {
    throw new DecodeError(
      `Cannot read the configuration section: machine name length ${length} is outside ` +
        `1..${MACHINE_NAME_BYTES_MAX}`,
      lengthField.base,
    );
  }
  const machine = (await readInto(src, raw, length, "the configuration's machine name")).latin1(
    length,
  );
  while ((await src.peekU8()) === Section.subsection) await readSubsection(src, raw);
  return { machine, raw: raw.take() };
}

async function readSubsection(src: ByteSource, raw: ByteWriter): Promise<void> {
  const at = src.offset;
  (await readInto(src, raw, 1, "a configuration subsection")).skip(1);
  const name = await readCountedString(src, raw, "a configuration subsection name");
  const version = (await readInto(src, raw, 4, "a configuration subsection version")).u32();
  if (version !== 1) {
    throw new UnsupportedStreamError(
      `Cannot read configuration subsection "${name}": version ${version} (reads 1)`,
      at,
    );
  }
  switch (name) {
    case ConfigSubsection.targetPageBits: {
      const field = await readInto(src, raw, 4, "the target page bits");
      const bits = field.u32();
      if (bits !== TARGET_PAGE_BITS) {
        throw new UnsupportedStreamError(
          `Target page size 2^${bits} is unsupported (only 4 KiB pages)`,
          field.base,
        );
      }
      return;
    }
    case ConfigSubsection.capabilities:
      return readCapabilities(src, raw);
    case ConfigSubsection.uuid:
      (await readInto(src, raw, CONFIG_UUID_BYTES, "the configuration UUID")).skip(
        CONFIG_UUID_BYTES,
      );
      return;
    default:
      throw new UnsupportedStreamError(`Unknown configuration subsection "${name}"`, at);
  }
}

async function readCapabilities(src: ByteSource, raw: ByteWriter): Promise<void> {
  const countField = await readInto(src, raw, 4, "the capability count");
  const count = countField.u32();
  if (count > CONFIG_CAPABILITIES_MAX) {
    throw new DecodeError(
      `Cannot read the configuration's capabilities: ${count} listed (max ${CONFIG_CAPABILITIES_MAX})`,
      countField.base,
    );
  }
  const at = src.offset;
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    names.push(await readCountedString(src, raw, "a capability name"));
  }
  if (names.length > 0) {
    const hint = names.includes("x-ignore-shared")
      ? ": x-ignore-shared streams omit shared RAM and add fields to the MEM_SIZE list"
      : "";
    throw new UnsupportedStreamError(
      `Stream was made with validated capabilities ${names.join(", ")}${hint}; ` +
        "migrate without them",
      at,
    );
  }
}

async function readCountedString(src: ByteSource, raw: ByteWriter, what: string): Promise<string> {
  const length = (await readInto(src, raw, 1, `${what} length`)).u8();
  return latin1Decode((await readInto(src, raw, length, what)).bytes);
}

/** Reads n bytes, appends them to `raw`, and returns a reader over exactly those bytes. */
async function readInto(
  src: ByteSource,
  raw: ByteWriter,
  n: number,
  what: string,
): Promise<ByteReader> {
  const reader = await src.read(n, what);
  const at = reader.offset;
  const bytes = reader.slice(n);
  raw.bytes(bytes);
  return new ByteReader(bytes, at);
}
