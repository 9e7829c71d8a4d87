/**
 * The data disk's content: fileCount files totalling exactly totalBytes, derived only from
 * the seed, so every build produces the same bytes. Kinds mix compression behaviour:
 * text (word soup, ~3x compressible), random (incompressible) and mixed (64 KiB blocks of
 * text, random and zeros). MANIFEST lists each file's name, size and FNV-1a 64.
 */
import assert from "node:assert/strict";
import { assertNever } from "../../src/util/index.ts";
import { DATA_FILE_BYTES_MAX, DATA_FILES_MAX, DATA_TOTAL_BYTES_MAX } from "../host/limits.ts";
import { fnv1a64Hex } from "./fnv1a64.ts";
import { Sfc32 } from "./prng.ts";

export const DataKind = { text: "text", random: "random", mixed: "mixed" } as const;
export type DataKind = (typeof DataKind)[keyof typeof DataKind];
const KIND_CYCLE: readonly DataKind[] = [DataKind.text, DataKind.random, DataKind.mixed];

/** What the data disk holds; part of the build's input hash. */
export interface DataDiskParams {
  totalBytes: number;
  fileCount: number;
  seed: number;
}

export interface DataFilePlan {
  name: string;
  sizeBytes: number;
  kind: DataKind;
  seed: number;
}

export interface ManifestEntry {
  name: string;
  sizeBytes: number;
  fnv1a64: string;
}

const MIXED_BLOCK_BYTES = 64 * 1024;
const WEIGHT_MAX = 16;
const WORDS = (
  "snapshot restore page memory guest kernel virtio block queue dirty precopy postcopy " +
  "working set fault prefetch chunk hash verify stream section device migrate converge " +
  "the a of and to in is it that for on with as by at from this be or are was"
)
  .split(" ")
  .map((w) => new TextEncoder().encode(w));

/** Decides names, sizes and kinds; sizes are deliberately not page-aligned. */
export function planDataFiles(params: DataDiskParams): DataFilePlan[] {
  const { totalBytes, fileCount, seed } = params;
  assert(Number.isSafeInteger(fileCount) && fileCount >= 1 && fileCount <= DATA_FILES_MAX);
  assert(Number.isSafeInteger(totalBytes) && totalBytes >= fileCount);
  assert(totalBytes <= DATA_TOTAL_BYTES_MAX, "data disk total within its limit");
  const prng = new Sfc32(seed);
  const weights = Array.from({ length: fileCount }, () => 1 + prng.below(WEIGHT_MAX));
  const weightSum = weights.reduce((a, b) => a + b, 0);
  let assigned = 0;
  return weights.map((weight, index) => {
    const last = index === fileCount - 1;
    const share = Math.max(1, Math.floor((totalBytes * weight) / weightSum));
    const sizeBytes = last ? totalBytes - assigned : share;
    assigned += sizeBytes;
    assert(sizeBytes >= 1 && sizeBytes <= DATA_FILE_BYTES_MAX, "each file within its limit");
    const kind = KIND_CYCLE[index % KIND_CYCLE.length] ?? DataKind.random;
    const name = `file-${String(index).padStart(2, "0")}-${kind}.dat`;
    return { name, sizeBytes, kind, seed: prng.u32() };
  });
}

function fillText(bytes: Uint8Array, prng: Sfc32): void {
  let pos = 0;
  let wordsOnLine = 0;
  while (pos < bytes.length) {
    const word = WORDS[prng.below(WORDS.length)] ?? WORDS[0];
    assert(word !== undefined);
    const take = Math.min(word.length, bytes.length - pos);
    bytes.set(word.subarray(0, take), pos);
    pos += take;
    if (pos >= bytes.length) break;
    wordsOnLine++;
    const endLine = wordsOnLine >= 8 + prng.below(8);
    bytes.set([endLine ? 0x0a : 0x20], pos);
    pos++;
    if (endLine) wordsOnLine = 0;
  }
}

function fillMixed(bytes: Uint8Array, prng: Sfc32): void {
  for (let start = 0, block = 0; start < bytes.length; start += MIXED_BLOCK_BYTES, block++) {
    const part = bytes.subarray(start, Math.min(bytes.length, start + MIXED_BLOCK_BYTES));
    if (block % 3 === 0) fillText(part, prng);
    else if (block % 3 === 1) prng.fill(part);
    // block % 3 === 2 stays zero: the checkpoint's zero-page path gets exercised too.
  }
}

/** The file's bytes, a pure function of its plan. */
export function generateDataFile(plan: DataFilePlan): Uint8Array {
  const bytes = new Uint8Array(plan.sizeBytes);
  const prng = new Sfc32(plan.seed);
  switch (plan.kind) {
    case DataKind.text:
      fillText(bytes, prng);
      break;
    case DataKind.random:
      prng.fill(bytes);
      break;
    case DataKind.mixed:
      fillMixed(bytes, prng);
      break;
    default:
      return assertNever(plan.kind, "data kind");
  }
  return bytes;
}

/** Manifest entry of a generated file. */
export function manifestEntry(plan: DataFilePlan, bytes: Uint8Array): ManifestEntry {
  assert.equal(bytes.length, plan.sizeBytes, "generated file has its planned size");
  return { name: plan.name, sizeBytes: plan.sizeBytes, fnv1a64: fnv1a64Hex(bytes) };
}

/** MANIFEST text, parsed by guest/src/filecache.c: "<name> <size> <fnv1a64 hex>" lines. */
export function formatManifest(entries: readonly ManifestEntry[]): string {
  const header = "# snapwake data disk v1: <name> <size bytes> <fnv1a64 hex>\n";
  return header + entries.map((e) => `${e.name} ${e.sizeBytes} ${e.fnv1a64}\n`).join("");
}
