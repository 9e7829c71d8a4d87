/** Reading back the restore records of a checkpoint (written by every lazy/partial restore). */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { RESTORE_RECORDS_LISTED_MAX } from "../limits.ts";
import { type RestoreRecord, restoresDir } from "./postcopy/index.ts";

/** One restore, its trace left out (it can be large; the record file keeps it). */
export interface RestoreSummary {
  readonly file: string;
  readonly record: Omit<RestoreRecord, "report"> & {
    readonly report: Omit<NonNullable<RestoreRecord["report"]>, "trace"> | null;
  };
}

/** The checkpoint's restore records, oldest first; unreadable files are reported, not hidden. */
export async function listRestoreRecords(
  home: string,
  checkpoint: string,
): Promise<{ restores: RestoreSummary[]; unreadable: string[] }> {
  const dir = restoresDir(home, checkpoint);
  const names = (await readdir(dir).catch(() => [] as string[]))
    .filter((n) => n.endsWith(".json") && !n.startsWith("."))
    .sort()
    .slice(-RESTORE_RECORDS_LISTED_MAX);
  const restores: RestoreSummary[] = [];
  const unreadable: string[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      const record = JSON.parse(await readFile(file, "utf8")) as RestoreRecord;
      const report = record.report === null ? null : withoutTrace(record.report);
      restores.push({ file, record: { ...record, report } });
    } catch {
      unreadable.push(file); // a record only informs; the list says which one could not be read
    }
  }
  return { restores, unreadable };
}

function withoutTrace<T extends { trace: unknown }>(report: T): Omit<T, "trace"> {
  const { trace: _trace, ...rest } = report;
  return rest;
}
