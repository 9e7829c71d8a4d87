/**
 * A cache of page digests per pack (`<home>/cache/digests/<pack id>`), so an incremental save
 * indexes what it shares without reading and decompressing the packs (ADR 0007). Not part of
 * the format and never trusted: a cached chunk is used only when the SHA-256 over its digests
 * equals the chunk hash of the checkpoint being indexed, whose index its manifest protects.
 * Anything else (missing, truncated, stale, damaged) falls back to reading the chunk.
 *
 *   "SWDG" u16 version 1, u16 0, u64 0      16-byte header
 *   records: offset u64 | pageCount u16 | 6 zero bytes | pageCount × 32-byte SHA-256
 *
 * Writes are best-effort and atomic (temp file, rename); `prune` drops packs no listed
 * checkpoint links.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CHUNK_PAGES_MAX, DIGEST_CACHE_BYTES_MAX } from "../../limits.ts";
import { digestCacheDir } from "../../store/layout.ts";
import { processAlive } from "../../util/index.ts";
import { chunkHashOfDigests, PAGE_DIGEST_BYTES } from "../format/chunk-hash.ts";
import type { ChunkEntry } from "../format/chunk-table.ts";
import { PACK_ID_PATTERN } from "../format/format.ts";

const MAGIC = "SWDG";
const HEADER_BYTES = 16;
const RECORD_HEADER_BYTES = 16;

/** A pack's cached digests: chunk offset → pageCount × 32 bytes. */
export type PackDigests = Map<number, Buffer>;

export class DigestCache {
  readonly dir: string;

  constructor(home: string) {
    this.dir = digestCacheDir(home);
  }

  /** The digests cached for pack `id` (empty if none or unreadable). Unverified: see `check`. */
  async load(id: string): Promise<PackDigests> {
    const out: PackDigests = new Map();
    const bytes = await readFile(this.#path(id)).catch(() => null);
    if (bytes === null || bytes.byteLength > DIGEST_CACHE_BYTES_MAX) return out;
    if (bytes.toString("latin1", 0, 4) !== MAGIC || bytes.readUInt16LE(4) !== 1) return out;
    let at = HEADER_BYTES;
    while (at + RECORD_HEADER_BYTES <= bytes.byteLength) {
      // Two u32 halves, not readBigUInt64LE: a BigInt per record was most of this loop's time.
      const offset = bytes.readUInt32LE(at) + bytes.readUInt32LE(at + 4) * 2 ** 32;
      const pages = bytes.readUInt16LE(at + 8);
      const end = at + RECORD_HEADER_BYTES + pages * PAGE_DIGEST_BYTES;
      if (pages < 1 || pages > CHUNK_PAGES_MAX || end > bytes.byteLength) break;
      out.set(offset, bytes.subarray(at + RECORD_HEADER_BYTES, end));
      at = end;
    }
    return out;
  }

  /** Adds `more` to pack `id`'s cached digests. Best-effort: a failure only costs speed. */
  async save(id: string, more: PackDigests): Promise<void> {
    if (more.size === 0 || !PACK_ID_PATTERN.test(id)) return;
    const all = await this.load(id);
    for (const [offset, digests] of more) all.set(offset, digests);
    const parts: Buffer[] = [header()];
    for (const [offset, digests] of [...all].sort((a, b) => a[0] - b[0])) {
      const r = Buffer.alloc(RECORD_HEADER_BYTES);
      r.writeBigUInt64LE(BigInt(offset), 0);
      r.writeUInt16LE(digests.byteLength / PAGE_DIGEST_BYTES, 8);
      parts.push(r, digests);
    }
    const temp = `${this.#path(id)}.${process.pid}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true });
      await writeFile(temp, Buffer.concat(parts));
      await rename(temp, this.#path(id));
    } catch {
      await rm(temp, { force: true }).catch(() => undefined);
    }
  }

  /** Removes the cache of every pack not in `keep`, and stray temp files; returns how many. */
  async prune(keep: ReadonlySet<string>): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (PACK_ID_PATTERN.test(name) && keep.has(name)) continue;
      if (/\.([0-9]+)\.tmp$/.test(name) && processAlive(Number(/\.([0-9]+)\.tmp$/.exec(name)?.[1])))
        continue;
      await rm(join(this.dir, name), { force: true });
      removed += 1;
    }
    return removed;
  }

  #path(id: string): string {
    return join(this.dir, id);
  }
}

/** The cached digests of `entry`'s chunk, if they hash to its chunk hash; else null. */
export function check(cached: PackDigests, entry: ChunkEntry): Buffer | null {
  const digests = cached.get(entry.offset);
  if (digests === undefined || digests.byteLength !== entry.pageCount * PAGE_DIGEST_BYTES)
    return null;
  return chunkHashOfDigests(digests).equals(entry.sha256) ? digests : null;
}

function header(): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write(MAGIC, 0, "latin1");
  h.writeUInt16LE(1, 4);
  return h;
}
