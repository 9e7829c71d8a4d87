/**
 * The working-set file, `<source>.ws` (docs/format.md §8): one JSON header line, then the pages
 * as fixed little-endian records (block u32, page u32, firstMs u32), hashed by the header. A
 * restore decides from the header alone whether a set is usable (its size against `ofPages`),
 * so a broad estimate of a large guest costs one small read, not a parse of its million pages
 * (0.5–1.1 s for version 1's JSON, `<source>.json`, which is still read); the records decode
 * several times faster than that JSON.
 *
 * Invariants: a decoded set has exactly `pageCount` pages, every field a u32, and its records'
 * SHA-256 is the header's; anything else is an error naming what is wrong.
 */
import crypto from "node:crypto";
import { WORKING_SET_HEADER_BYTES_MAX, WORKING_SET_PAGES_MAX } from "../limits.ts";
import type { WorkingSet, WorkingSetPage, WorkingSetSource } from "./working-set.ts";

export const WS_FORMAT = "snapwake-working-set";
/** Version 1 was one JSON object with the pages as `[block, page, firstMs]` triples. */
export const WS_VERSION = 2;
export const WS_VERSION_JSON = 1;
const RECORD_BYTES = 12;
const U32_MAX = 0xffff_ffff;

/** What the header line says; the pages follow it. */
export interface WorkingSetHeader {
  readonly format: typeof WS_FORMAT;
  readonly version: typeof WS_VERSION;
  readonly checkpoint: string;
  readonly manifestSha256: string;
  readonly source: WorkingSetSource;
  readonly createdAt: string;
  readonly ofPages?: number;
  readonly pageCount: number;
  readonly pagesSha256: string;
}

/** The file's bytes for `ws` of checkpoint `checkpoint` (identity `manifestSha256`). */
export function encodeWorkingSet(
  ws: WorkingSet,
  checkpoint: string,
  manifestSha256: string,
): Buffer {
  const records = Buffer.alloc(ws.pages.length * RECORD_BYTES);
  ws.pages.forEach((p, i) => {
    records.writeUInt32LE(p.block, i * RECORD_BYTES);
    records.writeUInt32LE(p.page, i * RECORD_BYTES + 4);
    records.writeUInt32LE(
      Math.min(U32_MAX, Math.max(0, Math.round(p.firstMs))),
      i * RECORD_BYTES + 8,
    );
  });
  const header: WorkingSetHeader = {
    format: WS_FORMAT,
    version: WS_VERSION,
    checkpoint,
    manifestSha256,
    source: ws.source,
    createdAt: new Date().toISOString(),
    ...(ws.ofPages === undefined ? {} : { ofPages: ws.ofPages }),
    pageCount: ws.pages.length,
    pagesSha256: crypto.hash("sha256", records, "hex"),
  };
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), records]);
}

/**
 * The header of a version-2 file from its first bytes (at least the header line), and where
 * its records start. `bad` builds the error for a reason.
 */
export function decodeHeader(
  head: Buffer,
  source: WorkingSetSource,
  bad: (why: string) => Error,
): { header: WorkingSetHeader; recordsAt: number } {
  const end = head.indexOf(0x0a);
  if (end < 0 || end > WORKING_SET_HEADER_BYTES_MAX) throw bad("has no header line");
  const o = parseVersioned(head.subarray(0, end).toString("utf8"), WS_VERSION, "header", bad);
  if (o.source !== source) throw bad(`holds source ${String(o.source)}, not ${source}`);
  if (!isCount(o.pageCount) || o.pageCount > WORKING_SET_PAGES_MAX)
    throw bad("has a malformed pageCount");
  if (o.ofPages !== undefined && !(isCount(o.ofPages) && o.ofPages > 0))
    throw bad("has a malformed ofPages");
  if (typeof o.pagesSha256 !== "string" || !/^[0-9a-f]{64}$/.test(o.pagesSha256))
    throw bad("has a malformed pagesSha256");
  return { header: o as unknown as WorkingSetHeader, recordsAt: end + 1 };
}

/** The pages of a whole version-2 file whose header `decodeHeader` read. */
export function decodePages(
  file: Buffer,
  header: WorkingSetHeader,
  recordsAt: number,
  bad: (why: string) => Error,
): WorkingSetPage[] {
  const records = file.subarray(recordsAt);
  if (records.byteLength !== header.pageCount * RECORD_BYTES)
    throw bad(`holds ${records.byteLength} bytes of pages, not ${header.pageCount} pages`);
  if (crypto.hash("sha256", records, "hex") !== header.pagesSha256)
    throw bad("fails its pages' hash check");
  const pages = new Array<WorkingSetPage>(header.pageCount);
  for (let i = 0; i < header.pageCount; i++) {
    const at = i * RECORD_BYTES;
    pages[i] = {
      block: records.readUInt32LE(at),
      page: records.readUInt32LE(at + 4),
      firstMs: records.readUInt32LE(at + 8),
    };
  }
  return pages;
}

/** A version-1 file: one JSON object, pages as `[block, page, firstMs]` triples. */
export function decodeJson(
  text: string,
  bad: (why: string) => Error,
): { pages: WorkingSetPage[]; ofPages?: number } {
  const o = parseVersioned(text, WS_VERSION_JSON, "file", bad);
  if (!Array.isArray(o.pages) || o.pages.length > WORKING_SET_PAGES_MAX)
    throw bad("has no valid page list");
  const pages = o.pages.map((entry: unknown): WorkingSetPage => {
    if (!Array.isArray(entry) || entry.length !== 3 || !entry.every(isCount))
      throw bad("has a malformed page entry");
    const [block, page, firstMs] = entry as [number, number, number];
    return { block, page, firstMs };
  });
  if (o.ofPages === undefined) return { pages };
  if (!(isCount(o.ofPages) && o.ofPages > 0)) throw bad("has a malformed ofPages");
  return { pages, ofPages: o.ofPages };
}

/** A JSON object of this format and `version`: the header line (2) or the whole file (1). */
function parseVersioned(
  text: string,
  version: number,
  what: "header" | "file",
  bad: (why: string) => Error,
): Record<string, unknown> {
  const its = what === "header" ? "has a header that" : "";
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw bad(`${its} is not JSON`.trim());
  }
  if (typeof o !== "object" || o === null) throw bad(`${its} is not an object`.trim());
  const r = o as Record<string, unknown>;
  if (r.format !== WS_FORMAT || r.version !== version)
    throw bad(`is not a ${WS_FORMAT} version ${version}`);
  return r;
}

function isCount(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0;
}
