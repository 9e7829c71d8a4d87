/**
 * The RAM directory (ADR 0035): a tmpfs mounted with huge pages, where an eager restore has
 * QEMU keep the guest's RAM instead of a memfd. Pages written there with pwrite(2) land in
 * 2 MiB pages, so the guest's first touch of its memory costs one fault per 2 MiB instead of
 * one per 4 KiB, as in the anonymous huge pages QEMU's own `-incoming` loads into.
 *
 * The user chooses it (`--ram-dir`, `SNAPWAKE_RAM_DIR`): mounting is the host's business. A
 * directory that is not there or not on a tmpfs is the user's mistake and an error; one that
 * would not help now (no huge pages, too little room) leaves the RAM in a memfd, with a note.
 */
import { readFile, realpath, stat, statfs } from "node:fs/promises";
import { UsageError } from "../errors.ts";
import { errorCode } from "../util/index.ts";

const MOUNTINFO = "/proc/self/mountinfo";
/** tmpfs mount options that back file pages, written ones too, with huge pages. */
const HUGE_OPTIONS = new Set(["huge=always", "huge=within_size"]);
const MIB = 2 ** 20;

/** Where the guest's RAM goes: `dir` (its real path), or a memfd for the reason in `note`. */
export type RamDirChoice = { readonly dir: string } | { readonly note: string };

/**
 * Whether `dir` can hold a RAM block of `lengthBytes` in huge pages now. Throws UsageError for a
 * directory that does not exist or is not on a tmpfs.
 */
export async function chooseRamDir(dir: string, lengthBytes: number): Promise<RamDirChoice> {
  const how =
    `mount a tmpfs with huge pages there ` +
    `(mount -t tmpfs -o huge=within_size,size=SIZE none ${dir}), or leave --ram-dir and ` +
    "SNAPWAKE_RAM_DIR unset";
  let real: string;
  try {
    real = await realpath(dir);
  } catch (error) {
    if (errorCode(error) !== "ENOENT") throw error;
    throw new UsageError(`The RAM directory "${dir}" does not exist: ${how}`);
  }
  if (!(await stat(real)).isDirectory())
    throw new UsageError(`The RAM directory "${dir}" is not a directory: ${how}`);
  const mount = mountOf(await readFile(MOUNTINFO, "utf8"), real);
  if (mount?.fsType !== "tmpfs") {
    throw new UsageError(
      `The RAM directory "${dir}" is on ${mount?.fsType ?? "an unknown file system"}, ` +
        `not a tmpfs: ${how}`,
    );
  }
  if (!mount.superOptions.some((o) => HUGE_OPTIONS.has(o))) {
    return {
      note:
        `the RAM directory "${dir}" is a tmpfs without huge pages (mount it with ` +
        "huge=within_size or huge=always): the guest's RAM went into a memfd",
    };
  }
  const fs = await statfs(real);
  const freeBytes = fs.bavail * fs.bsize;
  if (freeBytes < lengthBytes) {
    return {
      note:
        `the RAM directory "${dir}" has ${Math.floor(freeBytes / MIB)} MiB free and the ` +
        `guest's RAM needs ${Math.ceil(lengthBytes / MIB)} MiB: it went into a memfd`,
    };
  }
  return { dir: real };
}

export interface MountEntry {
  readonly mountPoint: string;
  readonly fsType: string;
  readonly superOptions: readonly string[];
}

/**
 * The mount `path` (a real path) is on, from the text of /proc/self/mountinfo: the mount point
 * that is its longest ancestor, the last listed of equals (it is mounted over the others).
 */
export function mountOf(mountinfo: string, path: string): MountEntry | null {
  let best: MountEntry | null = null;
  for (const line of mountinfo.split("\n")) {
    const fields = line.split(" ");
    const dash = fields.indexOf("-");
    const mountPoint = fields[4];
    const fsType = fields[dash + 1];
    if (dash < 6 || mountPoint === undefined || fsType === undefined) continue;
    const point = unescapeMountPath(mountPoint);
    const inside = point === "/" || path === point || path.startsWith(`${point}/`);
    if (!inside || (best !== null && point.length < best.mountPoint.length)) continue;
    best = { mountPoint: point, fsType, superOptions: (fields[dash + 3] ?? "").split(",") };
  }
  return best;
}

/** mountinfo writes space, tab, newline and backslash in paths as octal escapes. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(Number.parseInt(octal, 8)),
  );
}
