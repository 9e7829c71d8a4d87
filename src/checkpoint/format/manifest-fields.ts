/**
 * Field-by-field validation of a manifest body whose hash already matched (docs/format.md §2).
 * A failure here means a writer bug or a hand-made file, so the reason names the field. Unknown
 * fields are dropped: a later minor version may add some.
 */
import {
  CHECKPOINT_CHUNKS_MAX,
  CHECKPOINT_PAGES_MAX,
  CHUNK_PAGES_MAX,
  LAYOUT_SOURCE_BYTES_MAX,
  PAGE_SIZE_BYTES,
  RAM_BLOCK_BYTES_MAX,
  RAM_BLOCK_NAME_BYTES_MAX,
  RAM_BLOCKS_MAX,
} from "../../limits.ts";
import {
  FILE_NAME_PATTERN,
  Minor,
  PACK_HEADER_BYTES,
  PACK_ID_PATTERN,
  SHARED_PACKS_MAX,
  sharedPackFile,
} from "./format.ts";
import { isPlainObject, type JsonObject } from "./json-value.ts";
import type {
  CheckpointStatistics,
  ChunksInfo,
  FileRef,
  LayoutInfo,
  ManifestBody,
  ParentInfo,
  RamBlockInfo,
  RuntimeInfo,
  SharedPackInfo,
} from "./manifest.ts";
import { layersAndDisks } from "./manifest-layers.ts";
import { CHECKPOINT_NAME_PATTERN } from "./names.ts";

type Fail = (why: string) => Error;
type Obj = Record<string, unknown>;

const SHA256_HEX = /^[0-9a-f]{64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const STAT_KEYS: readonly (keyof CheckpointStatistics)[] = [
  "pagesTotal",
  "pagesZero",
  "pagesUnsent",
  "pagesStored",
  "pagesUnique",
  "pagesDuplicate",
  "pagesStale",
  "slotsUnreferenced",
  "pagesReceived",
  "rawBytes",
  "chunkRawBytes",
  "chunkStoredBytes",
  "storedBytes",
  "compressionRatio",
  "writeMs",
];
/** Added in 1.1; a 1.0 manifest has none and reads them as 0. */
const DISK_STAT_KEYS: readonly (keyof CheckpointStatistics)[] = [
  "pagesDisk",
  "diskRefs",
  "diskRawBytes",
  // 1.2; absent before, read as 0
  "pagesShared",
  "sharedChunks",
  "sharedStoredBytes",
];

/** Reads typed fields of one JSON object, failing with the field's full path. */
class Fields {
  readonly #o: Obj;
  readonly #path: string;
  readonly #fail: Fail;

  constructor(value: unknown, path: string, fail: Fail) {
    if (!isPlainObject(value))
      throw fail(`manifest field "${path || "(body)"}" is missing or invalid`);
    this.#o = value;
    this.#path = path;
    this.#fail = fail;
  }

  #bad(key: string): Error {
    return this.#fail(
      `manifest field "${this.#path ? `${this.#path}.` : ""}${key}" is missing or invalid`,
    );
  }

  str(key: string, ok: (s: string) => boolean = () => true): string {
    const v = this.#o[key];
    if (typeof v !== "string" || !ok(v)) throw this.#bad(key);
    return v;
  }

  int(key: string, min: number, max: number): number {
    const v = this.#o[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max)
      throw this.#bad(key);
    return v;
  }

  num(key: string): number {
    const v = this.#o[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw this.#bad(key);
    return v;
  }

  obj(key: string): Fields {
    return new Fields(this.#o[key], this.#path ? `${this.#path}.${key}` : key, this.#fail);
  }

  json(key: string): JsonObject {
    const v = this.#o[key];
    if (!isPlainObject(v)) throw this.#bad(key);
    return v as JsonObject;
  }

  arr(key: string, max: number): unknown[] {
    const v = this.#o[key];
    if (!Array.isArray(v) || v.length > max) throw this.#bad(key);
    return v;
  }

  /** Fields of a nested value (an array item), named `path` in errors. */
  at(value: unknown, path: string): Fields {
    return new Fields(value, path, this.#fail);
  }

  /** `arr`, with an absent field read as []. */
  optionalArr(key: string, max: number): unknown[] {
    return this.#o[key] === undefined ? [] : this.arr(key, max);
  }

  /** `obj`, or null when the field is absent. */
  optionalObj(key: string): Fields | null {
    return this.#o[key] === undefined ? null : this.obj(key);
  }

  /** A string, or null. */
  strOrNull(key: string, ok: (s: string) => boolean): string | null {
    return this.#o[key] === null ? null : this.str(key, ok);
  }

  /** `num`, with an absent field read as 0. */
  optionalNum(key: string): number {
    return this.#o[key] === undefined ? 0 : this.num(key);
  }

  path(key: string): string {
    return this.#path ? `${this.#path}.${key}` : key;
  }
}

export { type Fail, Fields, SHA256_HEX };

export function validateManifestBody(value: unknown, fail: Fail, minor: number): ManifestBody {
  const f = new Fields(value, "", fail);
  const stream = f.obj("stream");
  const disk = minor >= Minor.diskLayers ? layersAndDisks(f, fail) : { layers: [], disks: [] };
  return {
    name: f.str("name", (s) => CHECKPOINT_NAME_PATTERN.test(s)),
    createdAt: f.str("createdAt", (s) => !Number.isNaN(Date.parse(s))),
    pageSizeBytes: f.int("pageSizeBytes", PAGE_SIZE_BYTES, PAGE_SIZE_BYTES),
    vm: f.json("vm"),
    qemu: f.json("qemu"),
    stream: {
      configuration: stream.str("configuration", (s) => BASE64.test(s)),
      info: stream.json("info"),
    },
    ramBlocks: ramBlocks(f, fail),
    deviceState: fileRef(f.obj("deviceState")),
    index: fileRef(f.obj("index")),
    chunks: chunksInfo(f.obj("chunks")),
    statistics: statistics(f.obj("statistics")),
    ...disk,
    ...layoutOf(f),
    packs: minor >= Minor.sharedPacks ? sharedPacks(f, fail) : [],
    ...parentOf(f),
    ...(minor >= Minor.runtime ? { runtime: runtimeOf(f.obj("runtime")) } : {}),
  };
}

/** QEMU's version as query-version reports it, e.g. "10.0.2". */
export const QEMU_VERSION_PATTERN = /^[0-9]{1,5}\.[0-9]{1,5}\.[0-9]{1,5}$/;
/** A versioned machine type, e.g. "pc-i440fx-7.2" (the VM spec's machine pattern). */
const MACHINE_TYPE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function runtimeOf(f: Fields): RuntimeInfo {
  return {
    qemuVersion: f.str("qemuVersion", (s) => QEMU_VERSION_PATTERN.test(s)),
    machineType: f.str("machineType", (s) => MACHINE_TYPE_PATTERN.test(s)),
  };
}

function sharedPacks(f: Fields, fail: Fail): SharedPackInfo[] {
  const packs = f.arr("packs", SHARED_PACKS_MAX).map((v, i) => {
    const p = f.at(v, `packs[${i}]`);
    const id = p.str("id", (s) => PACK_ID_PATTERN.test(s));
    return {
      id,
      file: p.str("file", (s) => s === sharedPackFile(id)),
      bytes: p.int("bytes", PACK_HEADER_BYTES, Number.MAX_SAFE_INTEGER),
      writtenBy: p.str("writtenBy", (s) => CHECKPOINT_NAME_PATTERN.test(s)),
    };
  });
  if (new Set(packs.map((p) => p.id)).size !== packs.length)
    throw fail("manifest lists a shared pack twice");
  return packs;
}

/** The optional, informative `parent`. */
function parentOf(f: Fields): { parent?: ParentInfo } {
  const raw = f.optionalObj("parent");
  if (raw === null) return {};
  return {
    parent: {
      name: raw.str("name", (s) => CHECKPOINT_NAME_PATTERN.test(s)),
      createdAt: raw.str("createdAt", (s) => !Number.isNaN(Date.parse(s))),
    },
  };
}

/** The optional `layout` (§2.3): a kind this reader does not know is ignored, like any field. */
function layoutOf(f: Fields): { layout?: LayoutInfo } {
  const raw = f.optionalObj("layout");
  if (raw === null || raw.str("kind", () => true) !== "access-order") return {};
  return {
    layout: {
      kind: "access-order",
      workingSetPages: raw.int("workingSetPages", 0, CHECKPOINT_PAGES_MAX),
      source: raw.str(
        "source",
        (s) => s.length > 0 && Buffer.byteLength(s) <= LAYOUT_SOURCE_BYTES_MAX,
      ),
    },
  };
}

function ramBlocks(f: Fields, fail: Fail): RamBlockInfo[] {
  const names = new Set<string>();
  let pages = 0;
  const blocks = f.arr("ramBlocks", RAM_BLOCKS_MAX).map((v, i) => {
    const b = new Fields(v, `${f.path("ramBlocks")}[${i}]`, fail);
    const name = b.str(
      "name",
      (s) => s.length > 0 && Buffer.byteLength(s) <= RAM_BLOCK_NAME_BYTES_MAX,
    );
    const lengthBytes = b.int("lengthBytes", 0, RAM_BLOCK_BYTES_MAX);
    const pageCount = b.int("pageCount", 0, CHECKPOINT_PAGES_MAX);
    if (lengthBytes !== pageCount * PAGE_SIZE_BYTES) {
      throw fail(`manifest field "ramBlocks[${i}].pageCount" does not match its lengthBytes`);
    }
    if (names.has(name)) throw fail(`manifest lists RAM block "${name}" twice`);
    names.add(name);
    pages += pageCount;
    return { name, lengthBytes, pageCount };
  });
  if (pages > CHECKPOINT_PAGES_MAX)
    throw fail(`manifest RAM blocks hold ${pages} pages, over the limit`);
  return blocks;
}

function fileRef(f: Fields): FileRef {
  return {
    file: f.str("file", (s) => FILE_NAME_PATTERN.test(s)),
    bytes: f.int("bytes", 0, Number.MAX_SAFE_INTEGER),
    sha256: f.str("sha256", (s) => SHA256_HEX.test(s)),
  };
}

function chunksInfo(f: Fields): ChunksInfo {
  return {
    file: f.str("file", (s) => FILE_NAME_PATTERN.test(s)),
    count: f.int("count", 0, CHECKPOINT_CHUNKS_MAX),
    bytes: f.int("bytes", 0, Number.MAX_SAFE_INTEGER),
    codec: f.str("codec", (s) => s === "zstd") as "zstd",
    level: f.int("level", -(2 ** 17), 22),
    chunkPagesMax: f.int("chunkPagesMax", 1, CHUNK_PAGES_MAX),
  };
}

function statistics(f: Fields): CheckpointStatistics {
  const out: Record<string, number> = {};
  for (const key of STAT_KEYS) out[key] = f.num(key);
  for (const key of DISK_STAT_KEYS) out[key] = f.optionalNum(key);
  return out as unknown as CheckpointStatistics;
}
