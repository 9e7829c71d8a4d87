/**
 * The x86 vCPUs' paging registers (CR0, CR3, CR4, EFER) read out of a saved stream's device
 * state, for the accessed-bit working-set estimator (docs/accessed-bits.md).
 *
 * FULL sections are not length-framed, but the VMDESCRIPTION that ends a precopy stream says,
 * for every section in save order, which fields were written, how many bytes each took, and
 * which subsections followed. That is enough to size a section's body, which is how QEMU's own
 * analyze-migration reads a stream. So, for each "cpu" device the description lists:
 *   1. find its FULL header (`04 be32(section id) 03 "cpu" be32(instance) be32(version)`);
 *   2. size the body from the description (fields × array lengths, plus each subsection's
 *      `05 len name be32(version)` header and body);
 *   3. accept the match only if the section footer (`7e be32(section id)`) sits exactly where
 *      the body ends, so a chance byte pattern inside another device's data is never read;
 *   4. read the registers at their described offsets, by field name.
 * Anything else (no description, no "cpu" devices, a vCPU listed twice, a field missing or of
 * another size, a footer out of place — as when a section is cut short) is refused with an
 * UnsupportedStreamError that says what was found.
 */
import { ByteReader } from "../../bytes/index.ts";
import { UnsupportedStreamError } from "../../errors.ts";
import { Section } from "./constants.ts";

/** One vCPU's paging registers, raw (bit meanings: Intel SDM vol. 3A §2.5, §4.1). */
export interface VcpuPagingState {
  /** The section's instance id: the vCPU index. */
  readonly index: number;
  readonly cr0: bigint;
  readonly cr3: bigint;
  readonly cr4: bigint;
  readonly efer: bigint;
}

/** The description's name for each register (target/i386/machine.c, 7.2 and 10.0 alike). */
const REGISTER_FIELDS = {
  cr0: "env.cr[0]",
  cr3: "env.cr[3]",
  cr4: "env.cr[4]",
  efer: "env.efer",
} as const;
const REGISTER_BYTES = 8;
const CPU_IDSTR = "cpu";
/** A description nests structs and subsections; deeper than this is not a description. */
const DESCRIPTION_DEPTH_MAX = 16;

interface FieldDesc {
  readonly name: string;
  readonly sizeBytes: number;
  readonly count: number;
}
interface SectionDesc {
  readonly name: string;
  readonly fields: readonly FieldDesc[];
  readonly subsections: readonly SectionDesc[];
}
interface DeviceDesc extends SectionDesc {
  readonly instanceId: number;
  readonly version: number;
}

/**
 * The paging registers of every vCPU, in instance order. `sections` is the device state's
 * FULL sections and EOF; `vmdescription` its JSON (null when the stream had none).
 */
export function vcpuPagingStates(
  sections: Uint8Array,
  vmdescription: Uint8Array | null,
): VcpuPagingState[] {
  if (vmdescription === null) {
    throw new UnsupportedStreamError(
      "Cannot read the vCPU registers: the device state has no VMDESCRIPTION (postcopy-saved?)",
      0,
    );
  }
  const cpus = describedDevices(vmdescription, CPU_IDSTR);
  if (cpus.length === 0) {
    throw new UnsupportedStreamError(
      'Cannot read the vCPU registers: the VMDESCRIPTION lists no "cpu" device',
      0,
    );
  }
  const seen = new Set<number>();
  for (const cpu of cpus) {
    if (seen.has(cpu.instanceId)) {
      throw badDescription(`lists vCPU ${cpu.instanceId} twice`);
    }
    seen.add(cpu.instanceId);
  }
  return cpus.map((cpu) => readCpu(sections, cpu)).sort((a, b) => a.index - b.index);
}

function readCpu(sections: Uint8Array, cpu: DeviceDesc): VcpuPagingState {
  const bodyBytes = bodySize(cpu);
  const bodyAt = findSectionBody(sections, cpu, bodyBytes);
  const offsets = fieldOffsets(cpu.fields);
  const reg = (key: keyof typeof REGISTER_FIELDS): bigint => {
    const name = REGISTER_FIELDS[key];
    const at = offsets.get(name);
    if (at === undefined) {
      throw new UnsupportedStreamError(
        `Cannot read vCPU ${cpu.instanceId}: its description has no 8-byte field "${name}"`,
        bodyAt,
      );
    }
    return new ByteReader(sections.subarray(bodyAt + at, bodyAt + at + REGISTER_BYTES)).u64();
  };
  return {
    index: cpu.instanceId,
    cr0: reg("cr0"),
    cr3: reg("cr3"),
    cr4: reg("cr4"),
    efer: reg("efer"),
  };
}

/** Offsets in the body of the single (non-array) 8-byte fields. */
function fieldOffsets(fields: readonly FieldDesc[]): Map<string, number> {
  const out = new Map<string, number>();
  let at = 0;
  for (const f of fields) {
    if (f.count === 1 && f.sizeBytes === REGISTER_BYTES) out.set(f.name, at);
    at += f.sizeBytes * f.count;
  }
  return out;
}

function bodySize(s: SectionDesc): number {
  let bytes = 0;
  for (const f of s.fields) bytes += f.sizeBytes * f.count;
  for (const sub of s.subsections) bytes += 1 + 1 + sub.name.length + 4 + bodySize(sub);
  return bytes;
}

/** The body's offset in `sections`: the one header match whose footer sits right after it. */
function findSectionBody(sections: Uint8Array, cpu: DeviceDesc, bodyBytes: number): number {
  const idstr = Buffer.from(CPU_IDSTR, "latin1");
  const headerBytes = 1 + 4 + 1 + idstr.length + 4 + 4;
  const haystack = Buffer.from(sections.buffer, sections.byteOffset, sections.byteLength);
  const needle = Buffer.concat([Buffer.of(idstr.length), idstr]);
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + 1)) {
    const start = i - 5;
    if (start < 0 || start + headerBytes + bodyBytes + 5 > sections.byteLength) continue;
    const r = new ByteReader(sections.subarray(start, start + headerBytes));
    if (r.u8() !== Section.full) continue;
    const sectionId = r.u32();
    r.skip(1 + idstr.length);
    if (r.u32() !== cpu.instanceId || r.u32() !== cpu.version) continue;
    const footerAt = start + headerBytes + bodyBytes;
    const f = new ByteReader(sections.subarray(footerAt, footerAt + 5));
    if (f.u8() === Section.footer && f.u32() === sectionId) return start + headerBytes;
  }
  throw new UnsupportedStreamError(
    `Cannot find vCPU ${cpu.instanceId}'s section (version ${cpu.version}, ${bodyBytes} bytes ` +
      "as described) in the device state: the description and the sections disagree " +
      "(a truncated or damaged device state; save the VM again)",
    0,
  );
}

/** The described devices named `name` (others, e.g. old-style "size"-only ones, are skipped). */
function describedDevices(vmdescription: Uint8Array, name: string): DeviceDesc[] {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(vmdescription).toString("utf8"));
  } catch (error) {
    throw new UnsupportedStreamError("Cannot parse the VMDESCRIPTION: it is not JSON", 0, {
      cause: error,
    });
  }
  const devices = isObject(json) ? json.devices : undefined;
  if (!Array.isArray(devices)) throw badDescription("has no devices list");
  return devices
    .filter((d: unknown) => isObject(d) && d.name === name)
    .map((d: Record<string, unknown>) => {
      const { instance_id: instanceId, version } = d;
      if (!isCount(instanceId) || !isCount(version)) {
        throw badDescription(`has a "${name}" device without instance_id and version`);
      }
      return { ...sectionDesc(d, name, 0), instanceId, version };
    });
}

function sectionDesc(o: Record<string, unknown>, name: string, depth: number): SectionDesc {
  if (depth > DESCRIPTION_DEPTH_MAX) throw badDescription(`nests deeper than ${depth} levels`);
  const fields = o.fields ?? [];
  const subsections = o.subsections ?? [];
  if (!Array.isArray(fields) || !Array.isArray(subsections)) {
    throw badDescription(`section "${name}" has fields or subsections that are not lists`);
  }
  return {
    name,
    fields: fields.map((f: unknown) => fieldDesc(f, name)),
    subsections: subsections.map((s: unknown) => {
      if (!isObject(s) || typeof s.vmsd_name !== "string")
        throw badDescription(`section "${name}" has a subsection without vmsd_name`);
      return sectionDesc(s, s.vmsd_name, depth + 1);
    }),
  };
}

function fieldDesc(f: unknown, section: string): FieldDesc {
  if (!isObject(f) || typeof f.name !== "string" || !isCount(f.size)) {
    throw badDescription(`section "${section}" has a field without name and size`);
  }
  const count = f.array_len ?? 1;
  if (!isCount(count)) throw badDescription(`field "${f.name}" has a bad array_len`);
  return { name: f.name, sizeBytes: f.size, count };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function badDescription(why: string): UnsupportedStreamError {
  return new UnsupportedStreamError(`Cannot read the vCPU registers: the VMDESCRIPTION ${why}`, 0);
}
