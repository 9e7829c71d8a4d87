/**
 * Working sets kept beside the checkpoint they belong to, in `<home>/wss/<name>/<identity>/`
 * (store/layout.ts), where the identity is the SHA-256 of the checkpoint's manifest
 * (store/identity.ts): a checkpoint saved again under a removed one's name starts with no
 * working set rather than inheriting the old one. A checkpoint is immutable; its working sets
 * are not (later restores refine them), so they live outside it. A working set only steers
 * prefetching: a wrong one costs speed, never correctness, because every page still comes
 * from the verified checkpoint.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { InvalidCheckpointError, NotFoundError } from "../errors.ts";
import { WORKING_SET_FILE_BYTES_MAX, WORKING_SET_PAGES_MAX } from "../limits.ts";
import { checkpointIdentity } from "../store/identity.ts";
import { IDENTITY_PATTERN, workingSetDir, workingSetsDir } from "../store/layout.ts";
import {
  isBroad,
  type WorkingSet,
  type WorkingSetPage,
  type WorkingSetSource,
} from "./working-set.ts";

const FORMAT = "snapwake-working-set";
const VERSION = 1;
const SOURCES: readonly WorkingSetSource[] = ["trace", "write-set", "union", "accessed-bits"];
/**
 * Which working set a restore prefers when several exist: measured beats estimated, and of
 * the estimates, pages the guest's MMU saw accessed (reads too) beat pages it wrote during the
 * save (docs/accessed-bits.md, "Which estimate auto picks").
 */
const PREFERENCE: readonly WorkingSetSource[] = ["union", "trace", "accessed-bits", "write-set"];

/** The working-set directory of listed checkpoint `checkpoint`, or null when it is not listed. */
async function dirOf(home: string, checkpoint: string): Promise<string | null> {
  const identity = await checkpointIdentity(home, checkpoint);
  return identity === null ? null : workingSetDir(home, checkpoint, identity);
}

/**
 * Writes (atomically replaces) the checkpoint's working set of that source; the working sets
 * of earlier checkpoints of that name go. NotFoundError when no such checkpoint is listed.
 */
export async function saveWorkingSet(
  home: string,
  checkpoint: string,
  ws: WorkingSet,
): Promise<string> {
  const dir = await dirOf(home, checkpoint);
  if (dir === null)
    throw new NotFoundError(`No checkpoint named "${checkpoint}" to keep a working set for`);
  await removeStale(home, checkpoint, dir);
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${ws.source}.json`);
  const body = {
    format: FORMAT,
    version: VERSION,
    checkpoint,
    manifestSha256: dir.slice(-64),
    source: ws.source,
    createdAt: new Date().toISOString(),
    ...(ws.ofPages === undefined ? {} : { ofPages: ws.ofPages }),
    pages: ws.pages.map((p) => [p.block, p.page, Math.round(p.firstMs)]),
  };
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(body)}\n`);
  await rename(temp, file);
  return file;
}

/**
 * One `source` of a checkpoint's working sets, or without `source` the preferred one
 * (PREFERENCE, skipping a broad estimate: isBroad), or null.
 */
export async function loadWorkingSet(
  home: string,
  checkpoint: string,
  source?: WorkingSetSource,
): Promise<WorkingSet | null> {
  // The checkpoint's identity (its manifest's hash) and directory listing, once per call.
  const dir = await dirOf(home, checkpoint);
  if (dir === null) return null;
  const present = await sourcesIn(dir);
  if (source !== undefined)
    return present.includes(source) ? readSource(dir, checkpoint, source) : null;
  for (const s of PREFERENCE) {
    if (!present.includes(s)) continue;
    const ws = await readSource(dir, checkpoint, s);
    if (!isBroad(ws)) return ws;
  }
  return null;
}

async function readSource(
  dir: string,
  checkpoint: string,
  pick: WorkingSetSource,
): Promise<WorkingSet> {
  const file = join(dir, `${pick}.json`);
  const text = await readFile(file, "utf8");
  const bad = (why: string) =>
    new InvalidCheckpointError(
      checkpoint,
      `its working set ${file} ${why}: delete the file and profile again`,
    );
  if (text.length > WORKING_SET_FILE_BYTES_MAX) throw bad("is too large");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw bad("is not JSON");
  }
  const pages = parsePages(body, bad); // checks it is an object of the right format first
  const ofPages = (body as { ofPages?: unknown }).ofPages;
  if (ofPages === undefined) return { source: pick, pages };
  if (!(typeof ofPages === "number" && Number.isSafeInteger(ofPages) && ofPages > 0))
    throw bad("has a malformed ofPages");
  return { source: pick, pages, ofPages };
}

/** The working-set sources stored for a checkpoint (none when it is not listed). */
export async function listSources(home: string, checkpoint: string): Promise<WorkingSetSource[]> {
  const dir = await dirOf(home, checkpoint);
  return dir === null ? [] : sourcesIn(dir);
}

async function sourcesIn(dir: string): Promise<WorkingSetSource[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return SOURCES.filter((s) => names.includes(`${s}.json`));
}

/** One kept working set as `inspect` shows it. */
export interface WorkingSetSummary {
  readonly source: WorkingSetSource;
  readonly pages: number;
  /** The one a partial or auto restore picks by default. */
  readonly preferred: boolean;
  /** Holds most of the guest memory it was chosen from: picked only when asked for by name. */
  readonly broad: boolean;
}

/** Every working set kept for a checkpoint, in preference order. */
export async function summarizeWorkingSets(
  home: string,
  checkpoint: string,
): Promise<WorkingSetSummary[]> {
  const present = await listSources(home, checkpoint);
  const ordered = [
    ...PREFERENCE.filter((s) => present.includes(s)),
    ...present.filter((s) => !PREFERENCE.includes(s)),
  ];
  const out: WorkingSetSummary[] = [];
  for (const source of ordered) {
    const ws = await loadWorkingSet(home, checkpoint, source);
    if (ws === null) continue;
    const broad = isBroad(ws);
    const preferred = !broad && !out.some((w) => w.preferred);
    out.push({ source, pages: ws.pages.length, preferred, broad });
  }
  return out;
}

/** Removes every working set kept under a checkpoint's name (CheckpointStore.remove does). */
export async function removeWorkingSets(home: string, checkpoint: string): Promise<void> {
  await rm(workingSetsDir(home, checkpoint), { recursive: true, force: true });
}

/** Working sets of earlier checkpoints named like this one, and files of the unbound layout. */
async function removeStale(home: string, checkpoint: string, keep: string): Promise<void> {
  const parent = workingSetsDir(home, checkpoint);
  for (const entry of await readdir(parent).catch(() => [] as string[])) {
    const path = join(parent, entry);
    const stale = IDENTITY_PATTERN.test(entry)
      ? path !== keep
      : SOURCES.some((s) => entry === `${s}.json`);
    if (stale) await rm(path, { recursive: true, force: true });
  }
}

function parsePages(body: unknown, bad: (why: string) => Error): WorkingSetPage[] {
  if (typeof body !== "object" || body === null) throw bad("is not an object");
  const o = body as Record<string, unknown>;
  if (o.format !== FORMAT || o.version !== VERSION)
    throw bad(`is not a ${FORMAT} version ${VERSION}`);
  if (!Array.isArray(o.pages) || o.pages.length > WORKING_SET_PAGES_MAX)
    throw bad("has no valid page list");
  return o.pages.map((entry: unknown) => {
    if (
      !Array.isArray(entry) ||
      entry.length !== 3 ||
      !entry.every((n) => Number.isSafeInteger(n) && n >= 0)
    ) {
      throw bad("has a malformed page entry");
    }
    return { block: entry[0], page: entry[1], firstMs: entry[2] };
  });
}
