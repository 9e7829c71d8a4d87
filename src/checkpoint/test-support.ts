/**
 * Shared by the checkpoint tests (not part of the public surface): a seeded PRNG, throw-away
 * stores, a small checkpoint with known content, and tools that rewrite a checkpoint's files
 * *with valid hashes*, so a test can reach the check behind the hash check.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import { zstdCodec } from "./format/codec.ts";
import { FileName, MANIFEST_MAGIC } from "./format/format.ts";
import { decodeIndex, encodeIndex } from "./format/index-file.ts";
import {
  decodeManifest,
  encodeManifest,
  type ManifestBody,
  type RuntimeInfo,
  sha256Hex,
} from "./format/manifest.ts";
import type { CheckpointListing } from "./read/checkpoint-files.ts";
import { indexContext } from "./read/reader.ts";
import { CheckpointStore } from "./store/store.ts";
import type { StoreIo } from "./store/store-io.ts";
import { shareCheckpoint } from "./write/shared-pages.ts";
import { beginCheckpoint, type CheckpointWriter } from "./write/writer.ts";

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` pseudo-random bytes from `rand`. */
export function randomBytes(rand: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  const view = new DataView(out.buffer);
  for (let i = 0; i + 4 <= n; i += 4) view.setUint32(i, (rand() * 2 ** 32) >>> 0);
  return out;
}

/** A page that compresses (text-like): a repeated phrase with the page number in it. */
export function textPage(n: number): Uint8Array {
  return Buffer.alloc(PAGE_SIZE_BYTES, `page ${n}: the quick brown fox jumps over the lazy dog. `);
}

export interface TempStore {
  readonly home: string;
  readonly store: CheckpointStore;
  cleanup(): Promise<void>;
}

export async function tempStore(io?: StoreIo): Promise<TempStore> {
  const home = await mkdtemp(join(os.tmpdir(), "snapwake-checkpoint-test-"));
  const store = new CheckpointStore(io === undefined ? { home } : { home, io });
  return { home, store, cleanup: () => rm(home, { recursive: true, force: true }) };
}

/** A checkpoint `name` of one block "ram" of `pages` pages, page p being `pageOf(p)`. */
export async function writePages(
  store: CheckpointStore,
  name: string,
  pages: number,
  pageOf: (page: number) => Uint8Array,
): Promise<CheckpointListing> {
  const w = await beginCheckpoint(store, {
    name,
    vm: {},
    qemu: {},
    stream: { configuration: new Uint8Array(0) },
  });
  w.setRamBlocks([{ name: "ram", lengthBytes: pages * PAGE_SIZE_BYTES }]);
  for (let p = 0; p < pages; p++) await w.putPage(0, p, pageOf(p));
  w.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
  return w.commit();
}

/**
 * A small checkpoint: block "ram0" of 16 pages (0–5 random; 6–9 text; 10 and 11
 * the same text page; 12 zero fill 0; 13 zero fill 0xaa; 14–15 never sent) and block "rom" of
 * 2 text pages; device state "sections!" and vmdescription "{}".
 */
export async function writeSmall(
  store: CheckpointStore,
  name = "small",
): Promise<CheckpointListing> {
  return writeSmallVariant(store, name, null);
}

/** The QEMU and machine type writeSmallSaved records (format 1.3). */
export const SMALL_RUNTIME = { qemuVersion: "7.2.22", machineType: "pc-i440fx-7.2" } as const;

/** writeSmall's checkpoint as a save records it today: with its runtime (format 1.3). */
export async function writeSmallSaved(
  store: CheckpointStore,
  name = "saved",
): Promise<CheckpointListing> {
  return writeSmallVariant(store, name, null, SMALL_RUNTIME);
}

/**
 * An incremental checkpoint of `parent` (writeSmall's): the same pages but 0 and 7 changed and
 * page 8 equal to the parent's page 9; everything else is shared with the parent (format 1.2).
 */
export async function writeSmallChild(
  store: CheckpointStore,
  parent: string,
  name = "child",
): Promise<CheckpointListing> {
  return writeSmallVariant(store, name, parent);
}

async function writeSmallVariant(
  store: CheckpointStore,
  name: string,
  parent: string | null,
  runtime?: RuntimeInfo,
): Promise<CheckpointListing> {
  const shared = parent === null ? null : await shareCheckpoint(store, parent);
  const w = await beginCheckpoint(store, {
    name,
    vm: { name: "vm1", memoryMib: 1 },
    qemu: { version: "7.2.22" },
    stream: { configuration: Uint8Array.of(1, 2, 3), ram: { sectionId: 2 } },
    now: () => new Date(`2026-01-02T03:04:0${shared === null ? 5 : 6}.000Z`),
    ...(shared === null ? {} : { shared }),
    ...(runtime === undefined ? {} : { runtime }),
  });
  const edits = { 0: textPage(1000), 7: textPage(1007), 8: textPage(9) };
  await putSmallPages(w, prng(7), shared === null ? {} : edits);
  return w.commit();
}

/** writeSmall's blocks, pages and device state; `edits` replace pages of block "ram0". */
async function putSmallPages(
  w: CheckpointWriter,
  rand: () => number,
  edits: Readonly<Record<number, Uint8Array>> = {},
): Promise<void> {
  w.setRamBlocks([
    { name: "ram0", lengthBytes: 16 * PAGE_SIZE_BYTES },
    { name: "rom", lengthBytes: 2 * PAGE_SIZE_BYTES },
  ]);
  const ram0 = (p: number) =>
    p < 6 ? randomBytes(rand, PAGE_SIZE_BYTES) : textPage(p < 10 ? p : 100);
  for (let p = 0; p < 12; p++) {
    const page = ram0(p); // drawn even when edited, so later random pages stay the same
    await w.putPage(0, p, edits[p] ?? page);
  }
  w.putZero(0, 12, 0);
  w.putZero(0, 13, 0xaa);
  await w.putPage(1, 0, textPage(200));
  await w.putPage(1, 1, textPage(201));
  w.setDeviceState({ sections: Buffer.from("sections!"), vmdescription: Buffer.from("{}") });
}

/** Rewrites the manifest of checkpoint `dir` through `edit`, with a correct hash. */
export async function rewriteManifest(
  dir: string,
  edit: (body: ManifestBody) => ManifestBody,
  version?: string,
): Promise<void> {
  const path = join(dir, FileName.manifest);
  const old = decodeManifest(await readFile(path), dir.split("/").pop() ?? "");
  const { format: _format, ...body } = old;
  let bytes: Buffer = Buffer.from(encodeManifest(edit(body)));
  if (version !== undefined) bytes = rehashWithVersion(bytes, version);
  await writeFile(path, bytes);
}

/** The same manifest under another version line, hash recomputed. */
function rehashWithVersion(bytes: Buffer, version: string): Buffer {
  const text = bytes.toString("utf8");
  const [, , ...rest] = text.split("\n");
  const body = `${rest.join("\n")}`;
  const line1 = `${MANIFEST_MAGIC}${version}\n`;
  const hash = sha256Hex(Buffer.from(line1 + body));
  return Buffer.from(`${line1}sha256 ${hash} ${Buffer.byteLength(body)}\n${body}`);
}

/** Rewrites the page map through `edit` (valid hashes everywhere), keeping the chunk table. */
export async function rewritePageMap(
  dir: string,
  edit: (entries: Uint32Array) => void,
): Promise<void> {
  const name = dir.split("/").pop() ?? "";
  const manifest = decodeManifest(await readFile(join(dir, FileName.manifest)), name);
  const indexPath = join(dir, manifest.index.file);
  const decoded = decodeIndex(await readFile(indexPath), indexContext(manifest, name));
  edit(decoded.pageMap.entries);
  const index = encodeIndex(decoded.chunks, decoded.pageMap, zstdCodec(1), decoded.diskRefs);
  await writeFile(indexPath, index);
  await rewriteManifest(dir, (body) => ({
    ...body,
    index: { ...body.index, bytes: index.byteLength, sha256: sha256Hex(index) },
  }));
}

/** Flips one bit of `file` in `dir` at `offset` (negative: from the end). */
export async function flipBit(dir: string, file: string, offset: number): Promise<void> {
  const path = join(dir, file);
  const bytes = await readFile(path);
  const at = offset < 0 ? bytes.byteLength + offset : offset;
  bytes.writeUInt8((bytes.readUInt8(at) ^ 0x10) & 0xff, at);
  await writeFile(path, bytes);
}
