/**
 * The page-table pages of a checkpoint, found by the accessed-bit walk at save, kept beside its
 * working sets (`<home>/wss/<checkpoint>/page-tables.json`) so that a restore can clear their
 * Accessed bits as it sends them (docs/accessed-bits.md).
 *
 * An edit of guest memory needs proof, so the set is pinned twice:
 * - to the checkpoint's identity (its index's SHA-256): a checkpoint re-created under the same
 *   name does not inherit the set;
 * - per page, to the SHA-256 of the page as the walk read it: a restore edits a page only when
 *   the verified bytes it is about to send hash to exactly that.
 * Anything else (no file, another identity, a damaged file) means no edit: the restore is
 * still exact, only the next save's accessed-bit estimate is less fresh.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PAGE_TABLE_PAGES_MAX, RAM_BLOCKS_MAX, WORKING_SET_FILE_BYTES_MAX } from "../limits.ts";
import { workingSetsDir } from "../store/layout.ts";
import { clearAccessedBits } from "./page-table-walk.ts";

const FORMAT = "snapwake-page-tables";
const VERSION = 1;
const FILE = "page-tables.json";

export interface PageTablePage {
  readonly block: number;
  readonly page: number;
  /** SHA-256 (hex) of the page as the walk read it. */
  readonly sha256: string;
}

export interface PageTableSet {
  /** The checkpoint's index SHA-256: the set belongs to that checkpoint only. */
  readonly checkpointIndexSha256: string;
  readonly tables: readonly PageTablePage[];
}

export function pageSha256(page: Uint8Array): string {
  return createHash("sha256").update(page).digest("hex");
}

export async function savePageTables(
  home: string,
  checkpoint: string,
  set: PageTableSet,
): Promise<void> {
  if (set.tables.length > PAGE_TABLE_PAGES_MAX) return; // too many to carry: no edit later
  const dir = workingSetsDir(home, checkpoint);
  await mkdir(dir, { recursive: true });
  const file = join(dir, FILE);
  const body = {
    format: FORMAT,
    version: VERSION,
    checkpointIndexSha256: set.checkpointIndexSha256,
    tables: set.tables.map((t) => [t.block, t.page, t.sha256]),
  };
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(body)}\n`);
  await rename(temp, file);
}

/** The set saved for `checkpoint` if it belongs to the identity given, else null. */
export async function loadPageTables(
  home: string,
  checkpoint: string,
  checkpointIndexSha256: string,
): Promise<PageTableSet | null> {
  const text = await readFile(join(workingSetsDir(home, checkpoint), FILE), "utf8").catch(
    () => null,
  );
  if (text === null || text.length > WORKING_SET_FILE_BYTES_MAX) return null;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return null; // damaged: no edits, which is always safe
  }
  if (typeof body !== "object" || body === null) return null;
  const o = body as Record<string, unknown>;
  if (o.format !== FORMAT || o.version !== VERSION) return null;
  if (o.checkpointIndexSha256 !== checkpointIndexSha256) return null;
  if (!Array.isArray(o.tables) || o.tables.length > PAGE_TABLE_PAGES_MAX) return null;
  const tables: PageTablePage[] = [];
  for (const t of o.tables as unknown[]) {
    if (!Array.isArray(t) || t.length !== 3) return null;
    const [block, page, sha256] = t as unknown[];
    if (!isIndex(block) || !isIndex(page) || typeof sha256 !== "string") return null;
    if (!/^[0-9a-f]{64}$/.test(sha256)) return null;
    tables.push({ block, page, sha256 });
  }
  return { checkpointIndexSha256, tables };
}

/** Unique for block < RAM_BLOCKS_MAX; a safe integer for any page of a RAM block. */
function keyOf(block: number, page: number): number {
  return page * RAM_BLOCKS_MAX + block;
}

function isIndex(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** What a restore's accessed-bit reset did, for its result and record. */
export interface AccessedBitsResetReport {
  /** Page-table pages the checkpoint's walk proved (0: no reset, nothing to edit). */
  readonly tables: number;
  readonly cleared: number;
  readonly mismatched: number;
}

/**
 * The reset for a restore of `checkpoint` (identity `checkpointIndexSha256`): clears the
 * Accessed bits of the page-table pages its save-time walk proved; with no valid set for that
 * identity it edits nothing.
 */
export async function accessedBitsResetFor(
  home: string,
  checkpoint: string,
  checkpointIndexSha256: string,
): Promise<AccessedBitsReset> {
  return new AccessedBitsReset(await loadPageTables(home, checkpoint, checkpointIndexSha256));
}

/**
 * Applied to every page a restore sends: a proven page-table page leaves with its Accessed
 * bits cleared (a new window starts at the restore); every other page leaves as it is.
 */
export class AccessedBitsReset {
  /** Key: keyOf(block, page), a number: no allocation on the send path. */
  readonly #expected = new Map<number, string>();
  #cleared = 0;
  #mismatched = 0;

  constructor(set: PageTableSet | null) {
    for (const t of set?.tables ?? []) this.#expected.set(keyOf(t.block, t.page), t.sha256);
  }

  get tables(): number {
    return this.#expected.size;
  }
  /** Table pages sent with their Accessed bits cleared. */
  get cleared(): number {
    return this.#cleared;
  }
  /** Pages listed as tables whose bytes did not match the walk's: sent unchanged. */
  get mismatched(): number {
    return this.#mismatched;
  }

  report(): AccessedBitsResetReport {
    return { tables: this.tables, cleared: this.#cleared, mismatched: this.#mismatched };
  }

  /** The proven table pages of block `block`: a mapped restore sends only these of it. */
  pagesOf(block: number): number[] {
    const pages: number[] = [];
    for (const key of this.#expected.keys())
      if (key % RAM_BLOCKS_MAX === block) pages.push(Math.floor(key / RAM_BLOCKS_MAX));
    return pages.sort((a, b) => a - b);
  }

  /** `data` must be the verified page; returns what to send. */
  apply(block: number, page: number, data: Uint8Array): Uint8Array {
    if (this.#expected.size === 0) return data;
    const want = this.#expected.get(keyOf(block, page));
    if (want === undefined) return data;
    if (pageSha256(data) !== want) {
      this.#mismatched += 1;
      return data;
    }
    this.#cleared += 1;
    return clearAccessedBits(data);
  }
}
