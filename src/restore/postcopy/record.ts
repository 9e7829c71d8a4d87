/**
 * Restore records: one JSON file per lazy or partial restore, kept with the checkpoint's
 * restores at `<home>/restores/<checkpoint>/<iso-time>-<vm>.json`, holding the FillReport and
 * its request trace (the working-set source for later restores), or the error that ended it.
 * Written to a temp file and renamed, so a reader never sees half a record.
 */
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { restoresDir } from "../../store/layout.ts";
import type { FillReport, PostcopyMode } from "./report.ts";

export const RESTORE_RECORD_VERSION = 1;

export interface RestoreRecord {
  readonly formatVersion: typeof RESTORE_RECORD_VERSION;
  readonly checkpoint: string;
  readonly vm: string;
  readonly mode: PostcopyMode;
  /** ISO 8601 times. */
  readonly startedAt: string;
  readonly endedAt: string;
  readonly outcome: "filled" | "failed";
  readonly report: FillReport | null;
  readonly error: { readonly name: string; readonly message: string } | null;
}

export { restoresDir } from "../../store/layout.ts";

/** Writes `record`; returns its path. */
export async function writeRestoreRecord(home: string, record: RestoreRecord): Promise<string> {
  const dir = restoresDir(home, record.checkpoint);
  await mkdir(dir, { recursive: true });
  const stamp = record.startedAt.replace(/[:.]/g, "-");
  const path = join(dir, `${stamp}-${record.vm}.json`);
  const temp = join(dir, `.${stamp}-${record.vm}.json.tmp`);
  await writeFile(temp, `${JSON.stringify(record)}\n`);
  await rename(temp, path);
  return path;
}

/** A page of a working set: block index (the checkpoint's block order) and page index. */
export interface PageRef {
  readonly block: number;
  readonly page: number;
}
