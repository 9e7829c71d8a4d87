/**
 * A managed VM's origin: the checkpoint its memory last matched, restored from or saved to
 * (`<stateDir>/origin.json`). An incremental save takes it as the default parent, so the
 * pages the VM has not changed since are shared, not stored again (format 1.2).
 *
 * Informative only: a missing or unreadable origin means "no parent", never a failed save.
 */
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

const ORIGIN_FILE = "origin.json";
const ORIGIN_BYTES_MAX = 4096;

export interface VmOrigin {
  /** The checkpoint's name. */
  readonly checkpoint: string;
  /** How the VM came to match it. */
  readonly how: "restored" | "saved";
}

/** Records the VM's origin (atomically replaces the previous one). */
export async function writeOrigin(stateDir: string, origin: VmOrigin): Promise<void> {
  const temp = join(stateDir, `.${ORIGIN_FILE}.tmp`);
  await writeFile(temp, `${JSON.stringify(origin)}\n`);
  await rename(temp, join(stateDir, ORIGIN_FILE));
}

/** The VM's origin, or null when it has none (or it cannot be read). */
export async function readOrigin(stateDir: string): Promise<VmOrigin | null> {
  const bytes = await readFile(join(stateDir, ORIGIN_FILE)).catch(() => null);
  if (bytes === null || bytes.byteLength > ORIGIN_BYTES_MAX) return null;
  try {
    const v = JSON.parse(bytes.toString("utf8")) as { checkpoint?: unknown; how?: unknown };
    if (typeof v.checkpoint !== "string" || (v.how !== "restored" && v.how !== "saved"))
      return null;
    return { checkpoint: v.checkpoint, how: v.how };
  } catch {
    return null;
  }
}
