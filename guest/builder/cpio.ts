/**
 * A reproducible newc ("070701") cpio writer for the initramfs. Entries are sorted by path,
 * owned by root, dated 0 and numbered by position, so the same inputs give the same bytes.
 * Layout per entry: 110-byte ASCII header (13 fields of 8 hex digits after the magic),
 * NUL-terminated name padded to 4 bytes, data padded to 4 bytes; then "TRAILER!!!".
 */
import assert from "node:assert/strict";
import { assertNever } from "../../src/util/index.ts";

export type CpioEntry =
  | { kind: "dir"; path: string; mode: number }
  | { kind: "file"; path: string; mode: number; data: Uint8Array }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "chardev"; path: string; mode: number; major: number; minor: number };

const MAGIC = "070701";
const HEADER_BYTES = 110;
const TRAILER = "TRAILER!!!";
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const encoder = new TextEncoder();

interface Fields {
  ino: number;
  mode: number;
  nlink: number;
  data: Uint8Array;
  rdevMajor: number;
  rdevMinor: number;
}

function hex8(n: number): string {
  assert(Number.isSafeInteger(n) && n >= 0 && n <= 0xffffffff, "cpio field fits 32 bits");
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function record(name: string, f: Fields): Uint8Array[] {
  const nameBytes = encoder.encode(`${name}\0`);
  const header =
    MAGIC +
    [f.ino, f.mode, 0, 0, f.nlink, 0, f.data.length, 0, 0, f.rdevMajor, f.rdevMinor]
      .concat([nameBytes.length, 0])
      .map(hex8)
      .join("");
  assert.equal(header.length, HEADER_BYTES);
  return [
    encoder.encode(header),
    nameBytes,
    new Uint8Array(pad4(HEADER_BYTES + nameBytes.length)),
    f.data,
    new Uint8Array(pad4(f.data.length)),
  ];
}

function fieldsOf(entry: CpioEntry, ino: number): Fields {
  const base = { ino, nlink: 1, data: new Uint8Array(0), rdevMajor: 0, rdevMinor: 0 };
  switch (entry.kind) {
    case "dir":
      return { ...base, mode: S_IFDIR | entry.mode, nlink: 2 };
    case "file":
      return { ...base, mode: S_IFREG | entry.mode, data: entry.data };
    case "symlink":
      return { ...base, mode: S_IFLNK | 0o777, data: encoder.encode(entry.target) };
    case "chardev":
      return {
        ...base,
        mode: S_IFCHR | entry.mode,
        rdevMajor: entry.major,
        rdevMinor: entry.minor,
      };
    default:
      return assertNever(entry, "cpio entry");
  }
}

/** The archive's bytes; paths are relative ("bin/sh"), parents should be listed too. */
export function writeCpio(entries: readonly CpioEntry[]): Uint8Array {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const parts: Uint8Array[] = [];
  sorted.forEach((entry, index) => {
    assert(!entry.path.startsWith("/") && entry.path !== "", "cpio paths are relative");
    if (index > 0) assert.notEqual(entry.path, sorted[index - 1]?.path, "cpio paths are unique");
    parts.push(...record(entry.path, fieldsOf(entry, index + 1)));
  });
  const empty = { ino: 0, mode: 0, nlink: 1, data: new Uint8Array(0), rdevMajor: 0, rdevMinor: 0 };
  parts.push(...record(TRAILER, empty));
  return Buffer.concat(parts);
}
