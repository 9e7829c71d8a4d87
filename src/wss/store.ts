/**
 * Working sets kept beside the checkpoint they belong to, in `<home>/wss/<name>/<identity>/`
 * (store/layout.ts), where the identity is the SHA-256 of the checkpoint's manifest
 * (store/identity.ts): a checkpoint saved again under a removed one's name starts with no
 * working set rather than inheriting the old one. A checkpoint is immutable; its working sets
 * are not (later restores refine them), so they live outside it. A working set only steers
 * prefetching: a wrong one costs speed, never correctness, because every page still comes
 * from the verified checkpoint.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { InvalidCheckpointError, NotFoundError } from "../errors.ts";
import { WORKING_SET_FILE_BYTES_MAX, WORKING_SET_HEADER_BYTES_MAX } from "../limits.ts";
import { checkpointIdentity } from "../store/identity.ts";
import { IDENTITY_PATTERN, workingSetDir, workingSetsDir } from "../store/layout.ts";
import { decodeHeader, decodeJson, decodePages, encodeWorkingSet } from "./file.ts";
import { isBroadCount, type WorkingSet, type WorkingSetSource } from "./working-set.ts";

const SOURCES: readonly WorkingSetSource[] = ["trace", "write-set", "union", "accessed-bits"];
/**
 * Which working set a restore prefers when several exist: measured beats estimated, and of
 * the estimates, pages the guest's MMU saw accessed (reads too) beat pages it wrote during the
 * save (docs/accessed-bits.md, "Which estimate auto picks").
 */
export const WORKING_SET_PREFERENCE = [
  "union",
  "trace",
  "accessed-bits",
  "write-set",
] as const satisfies readonly WorkingSetSource[];
const PREFERENCE: readonly WorkingSetSource[] = WORKING_SET_PREFERENCE;
/** The file of each version (file.ts): version 2 is written, version 1 still read. */
const fileOf = (source: WorkingSetSource, version: 1 | 2) =>
  `${source}.${version === 2 ? "ws" : "json"}`;

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
  const file = join(dir, fileOf(ws.source, 2));
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, encodeWorkingSet(ws, checkpoint, dir.slice(-64)));
  await rename(temp, file);
  await rm(join(dir, fileOf(ws.source, 1)), { force: true }); // replaced
  return file;
}

/**
 * One `source` of a checkpoint's working sets, or without `source` the preferred one
 * (PREFERENCE, skipping a broad estimate: isBroad, told from a file's header), or null.
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
  if (source !== undefined) {
    const version = present.get(source);
    return version === undefined ? null : readSource(dir, checkpoint, source, version);
  }
  for (const s of PREFERENCE) {
    const version = present.get(s);
    if (version === undefined) continue;
    if (version === 2) {
      const { pageCount, ofPages } = await readCounts(dir, checkpoint, s);
      if (isBroadCount(pageCount, ofPages)) continue;
    }
    const ws = await readSource(dir, checkpoint, s, version);
    if (!isBroadCount(ws.pages.length, ws.ofPages)) return ws;
  }
  return null;
}

function badFile(checkpoint: string, file: string): (why: string) => InvalidCheckpointError {
  return (why) =>
    new InvalidCheckpointError(
      checkpoint,
      `its working set ${file} ${why}: delete the file and profile again`,
    );
}

/** A version-2 file's page count and ofPages, from its header alone. */
async function readCounts(
  dir: string,
  checkpoint: string,
  source: WorkingSetSource,
): Promise<{ pageCount: number; ofPages: number | undefined }> {
  const file = join(dir, fileOf(source, 2));
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(WORKING_SET_HEADER_BYTES_MAX + 1);
    const { bytesRead } = await fh.read(head, 0, head.byteLength, 0);
    const { header } = decodeHeader(head.subarray(0, bytesRead), source, badFile(checkpoint, file));
    return { pageCount: header.pageCount, ofPages: header.ofPages };
  } finally {
    await fh.close();
  }
}

async function readSource(
  dir: string,
  checkpoint: string,
  source: WorkingSetSource,
  version: 1 | 2,
): Promise<WorkingSet> {
  const file = join(dir, fileOf(source, version));
  const bad = badFile(checkpoint, file);
  // Sized before it is read: a damaged or foreign file never makes us allocate its length.
  if ((await stat(file)).size > WORKING_SET_FILE_BYTES_MAX) throw bad("is too large");
  const bytes = await readFile(file);
  if (bytes.byteLength > WORKING_SET_FILE_BYTES_MAX) throw bad("is too large");
  if (version === 1) return { source, ...decodeJson(bytes.toString("utf8"), bad) };
  const { header, recordsAt } = decodeHeader(bytes, source, bad);
  const pages = decodePages(bytes, header, recordsAt, bad);
  return header.ofPages === undefined
    ? { source, pages }
    : { source, pages, ofPages: header.ofPages };
}

/** Where the checkpoint's working set of `source` is now (a relayout moves it), or null. */
export async function workingSetFile(
  home: string,
  checkpoint: string,
  source: WorkingSetSource,
): Promise<string | null> {
  const dir = await dirOf(home, checkpoint);
  const version = dir === null ? undefined : (await sourcesIn(dir)).get(source);
  return dir === null || version === undefined ? null : join(dir, fileOf(source, version));
}

/** The working-set sources stored for a checkpoint (none when it is not listed). */
export async function listSources(home: string, checkpoint: string): Promise<WorkingSetSource[]> {
  const dir = await dirOf(home, checkpoint);
  return dir === null ? [] : [...(await sourcesIn(dir)).keys()];
}

/** Each stored source with the version of its file (2 where both are there). */
async function sourcesIn(dir: string): Promise<Map<WorkingSetSource, 1 | 2>> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out = new Map<WorkingSetSource, 1 | 2>();
  for (const s of SOURCES) {
    if (names.includes(fileOf(s, 2))) out.set(s, 2);
    else if (names.includes(fileOf(s, 1))) out.set(s, 1);
  }
  return out;
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

/** Every working set kept for a checkpoint, in preference order (from headers where it can). */
export async function summarizeWorkingSets(
  home: string,
  checkpoint: string,
): Promise<WorkingSetSummary[]> {
  const dir = await dirOf(home, checkpoint);
  if (dir === null) return [];
  const present = await sourcesIn(dir);
  const ordered = [
    ...PREFERENCE.filter((s) => present.has(s)),
    ...[...present.keys()].filter((s) => !PREFERENCE.includes(s)),
  ];
  const out: WorkingSetSummary[] = [];
  for (const source of ordered) {
    const version = present.get(source) ?? 2;
    const { pageCount, ofPages } =
      version === 2
        ? await readCounts(dir, checkpoint, source)
        : await readSource(dir, checkpoint, source, version).then((ws) => ({
            pageCount: ws.pages.length,
            ofPages: ws.ofPages,
          }));
    const broad = isBroadCount(pageCount, ofPages);
    const preferred = !broad && !out.some((w) => w.preferred);
    out.push({ source, pages: pageCount, preferred, broad });
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
      : SOURCES.some((s) => entry === fileOf(s, 1) || entry === fileOf(s, 2));
    if (stale) await rm(path, { recursive: true, force: true });
  }
}
