/**
 * The store lock (ADR 0009): an advisory lock made of one holder file per holding process in
 * `<home>/locks/`, naming its pid (and the pid's start time, so a reused pid is not taken for
 * a live holder), its command, its mode and the checkpoints it reads or writes. A holder that
 * crashed is recognised by its dead pid and its file is removed by the next command that looks.
 *
 * Who may hold at once:
 * - "exclusive" (gc) conflicts with every other holder;
 * - "shared" holders (save, restore, rm, relayout) coexist unless they name one checkpoint
 *   and one of them writes it (save of that name, rm, relayout): two restores of one
 *   checkpoint go together, a restore and an rm of it do not.
 * A conflict is refused at once (StoreBusyError naming the holder): nothing waits on another
 * command for an unbounded time. Taking the lock (checking the holders, then adding one's own
 * file) is itself serialised by `<home>/locks/.acquire`, created O_EXCL and held for
 * milliseconds; one left by a crashed process is taken over once its pid is dead.
 */
import crypto from "node:crypto";
import { readFileSync, unlinkSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { StoreBusyError } from "../errors.ts";
import { STORE_LOCK_ENTRY_WAIT_MS } from "../limits.ts";
import { errorCode, processAlive } from "../util/index.ts";
import { locksDir } from "./layout.ts";

export type LockMode = "shared" | "exclusive";

/** A checkpoint a holder reads (restore) or writes (save of that name, rm, relayout). */
export interface CheckpointUse {
  readonly checkpoint: string;
  readonly access: "read" | "write";
}

export interface LockRequest {
  /** The command, as a user would name it: "save", "restore", "rm", "gc", … */
  readonly command: string;
  readonly mode: LockMode;
  readonly uses?: readonly CheckpointUse[];
}

/** A holder file's content. */
interface Holder {
  readonly pid: number;
  /** /proc/<pid>/stat's start time, or null where there is no /proc. */
  readonly started: string | null;
  readonly command: string;
  readonly mode: LockMode;
  readonly uses: readonly CheckpointUse[];
  /** ISO 8601. */
  readonly since: string;
}

const HOLDER_FILE = /^([0-9]{1,10})-[0-9a-f]{16}\.json$/;
const ENTRY_FILE = ".acquire";
/** An entry file with no readable pid is a crash between create and write after this long. */
const ENTRY_UNREADABLE_STALE_MS = 2000;
const ENTRY_RETRY_MS = 5;

/** Holder files of this process, removed synchronously if it exits while holding them. */
const held = new Set<string>();
process.on("exit", () => {
  for (const file of held) {
    try {
      unlinkSync(file);
    } catch {
      // already gone
    }
  }
});

export class StoreLock {
  readonly #home: string;
  readonly #file: string;
  #holder: Holder;

  private constructor(home: string, file: string, holder: Holder) {
    this.#home = home;
    this.#file = file;
    this.#holder = holder;
  }

  /** Takes the lock for `request`, or throws StoreBusyError naming who holds it. */
  static async acquire(home: string, request: LockRequest): Promise<StoreLock> {
    const dir = locksDir(home);
    await mkdir(dir, { recursive: true });
    const holder: Holder = {
      pid: process.pid,
      started: startTimeOf(process.pid),
      command: request.command,
      mode: request.mode,
      uses: request.uses ?? [],
      since: new Date().toISOString(),
    };
    const file = join(dir, `${process.pid}-${crypto.randomBytes(8).toString("hex")}.json`);
    await underEntry(dir, async () => {
      await refuseConflicts(dir, holder, null);
      await writeFile(file, `${JSON.stringify(holder)}\n`);
      held.add(file);
    });
    return new StoreLock(home, file, holder);
  }

  /** Adds checkpoints this holder uses (e.g. a save's parent once known); refused on conflict. */
  async add(uses: readonly CheckpointUse[]): Promise<void> {
    if (uses.length === 0) return;
    const next: Holder = { ...this.#holder, uses: [...this.#holder.uses, ...uses] };
    const dir = locksDir(this.#home);
    await underEntry(dir, async () => {
      await refuseConflicts(dir, next, this.#file);
      await writeFile(this.#file, `${JSON.stringify(next)}\n`);
    });
    this.#holder = next;
  }

  /** Gives the lock back (idempotent). */
  async release(): Promise<void> {
    if (!held.delete(this.#file)) return;
    await rm(this.#file, { force: true });
  }
}

/** Runs `body` as the only process taking or changing a hold in `dir`. */
async function underEntry(dir: string, body: () => Promise<void>): Promise<void> {
  const entry = join(dir, ENTRY_FILE);
  const deadline = performance.now() + STORE_LOCK_ENTRY_WAIT_MS;
  for (;;) {
    try {
      await writeFile(entry, `${process.pid} ${startTimeOf(process.pid) ?? ""}\n`, { flag: "wx" });
      break;
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error;
    }
    const owner = await entryOwner(entry);
    if (owner === "stale") {
      await rm(entry, { force: true });
      continue;
    }
    if (performance.now() > deadline) {
      throw new StoreBusyError(
        `The store lock ${entry} has been held by pid ${owner ?? "?"} for more than ` +
          `${STORE_LOCK_ENTRY_WAIT_MS} ms: if no snapwake command runs, delete that file`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, ENTRY_RETRY_MS));
  }
  try {
    await body();
  } finally {
    await rm(entry, { force: true });
  }
}

/** The entry file's live owner pid, "stale" when its process is gone, null when unreadable. */
async function entryOwner(entry: string): Promise<number | "stale" | null> {
  const text = await readFile(entry, "utf8").catch(() => null);
  const [pidText, started] = (text ?? "").trim().split(" ");
  const pid = Number(pidText);
  if (text !== null && Number.isSafeInteger(pid) && pid > 0)
    return holderAlive(pid, started || null) ? pid : "stale";
  const info = await stat(entry).catch(() => null);
  if (info === null) return null; // released meanwhile: try again
  return Date.now() - info.mtimeMs > ENTRY_UNREADABLE_STALE_MS ? "stale" : null;
}

/** Throws StoreBusyError if a live holder other than `own` conflicts with `holder`. */
async function refuseConflicts(dir: string, holder: Holder, own: string | null): Promise<void> {
  for (const name of (await readdir(dir)).sort()) {
    if (!HOLDER_FILE.test(name)) continue;
    const path = join(dir, name);
    if (path === own) continue;
    const other = await readHolder(path);
    if (other === null) continue;
    if (!holderAlive(other.pid, other.started)) {
      await rm(path, { force: true }); // its process crashed: the hold went with it
      continue;
    }
    const why = conflict(holder, other);
    if (why !== null) throw new StoreBusyError(why);
  }
}

/** Why `a` cannot hold together with `b`, or null when they can. */
function conflict(a: Holder, b: Holder): string | null {
  const who = `\`${b.command}\` (pid ${b.pid}, since ${b.since})`;
  if (a.mode === "exclusive")
    return `Cannot ${a.command} now: ${who} is using the store; run it again when that has ended`;
  if (b.mode === "exclusive")
    return `Cannot ${a.command} now: ${who} holds the store alone; run it again when that has ended`;
  for (const mine of a.uses) {
    for (const theirs of b.uses) {
      if (mine.checkpoint !== theirs.checkpoint) continue;
      if (mine.access === "read" && theirs.access === "read") continue;
      const doing = theirs.access === "read" ? "is reading it" : "is writing it";
      const served =
        b.command === "restore"
          ? " (a lazy restore reads its checkpoint until its page server has filled the guest)"
          : "";
      return (
        `Cannot ${a.command} checkpoint "${mine.checkpoint}": ${who} ${doing}${served}; ` +
        "run it again when that has ended"
      );
    }
  }
  return null;
}

async function readHolder(path: string): Promise<Holder | null> {
  const text = await readFile(path, "utf8").catch(() => null);
  if (text === null) return null; // released meanwhile
  try {
    const v = JSON.parse(text) as Partial<Holder>;
    if (typeof v.pid !== "number" || typeof v.command !== "string") return null;
    return {
      pid: v.pid,
      started: typeof v.started === "string" ? v.started : null,
      command: v.command,
      mode: v.mode === "exclusive" ? "exclusive" : "shared",
      uses: Array.isArray(v.uses) ? v.uses : [],
      since: typeof v.since === "string" ? v.since : "?",
    };
  } catch {
    return null; // not ours to judge; a holder writes its file whole under the entry lock
  }
}

/** Whether `pid` lives and, where /proc says, is the same process that wrote the hold. */
function holderAlive(pid: number, started: string | null): boolean {
  if (!processAlive(pid)) return false;
  if (started === null) return true;
  const now = startTimeOf(pid);
  return now === null || now === started;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or null. */
function startTimeOf(pid: number): string | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return fields[19] ?? null;
}
