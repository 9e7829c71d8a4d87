/**
 * The guest RAM an eager restore writes itself (ADR 0034). QEMU backs the checkpoint's main RAM
 * block with a memfd of its own (memory-backend-memfd, share=on), or with a file it makes in
 * the RAM directory (ram-dir.ts, ADR 0035); this process finds that file among QEMU's
 * descriptors as soon as QEMU has made it, opens it through `/proc/<pid>/fd`, and writes the
 * verified pages into it with pwrite(2) while QEMU starts. QEMU's stream then carries no page
 * of that block.
 *
 * Why: QEMU loads a page by copying it into fresh anonymous memory, and every first touch of
 * such memory by a copy in user space is a page fault, which costs ~11 µs per 4 KiB on these
 * hosts; pwrite(2) into a memfd allocates and fills the same pages in the kernel, ~6× cheaper
 * (ADR 0034 has the measurements).
 *
 * Invariants: only a child of this process is searched (its pid cannot be reused before this
 * process reaps it); the file found is the only one of its name and exactly the block's
 * length, or the search fails; a QEMU that exits, or is up without such a file, fails the
 * search with a message instead of leaving it waiting.
 */
import { type FileHandle, open, readdir, readlink } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { abortError } from "../abort.ts";
import { QEMU_MEMFD_POLL_MS } from "../limits.ts";
import { errorCode } from "../util/index.ts";
import { QEMU_MEMFD_NAME, QEMU_RAM_FILE_PREFIX, type SharedRam } from "../vm/index.ts";

/** Extra QEMU arguments that set up, or write, guest memory themselves. */
const MEMORY_ARGUMENT = /memory-backend|memdev|mem-path|mem-prealloc|^-numa$|loader/;

/**
 * Why a VM spec's RAM cannot be a memfd this process fills, or null: its `extraArgs` (the
 * escape hatch, appended to QEMU's command line) choose a memory backend, NUMA nodes or a
 * loader that writes into RAM at reset. Such a VM restores through the stream, as QEMU's own
 * `-incoming` would restore it.
 */
export function memfdRefusal(recordedSpec: unknown): string | null {
  const extra = (recordedSpec as { extraArgs?: unknown } | null)?.extraArgs;
  if (!Array.isArray(extra)) return null;
  const arg = extra.find((a): a is string => typeof a === "string" && MEMORY_ARGUMENT.test(a));
  if (arg === undefined) return null;
  return `the VM spec's extra arguments set up guest memory themselves ("${arg}")`;
}

/** A search for QEMU's guest RAM file, begun once QEMU was spawned. */
export interface RamSearch {
  /** The file, open for reading and writing; rejects as the module comment says. */
  readonly found: Promise<FileHandle>;
  /** QEMU's QMP is up, so its machine, and its RAM file, exist: one more look, then fail. */
  qemuUp(): void;
}

/** The guest RAM QEMU was given: its length, and the RAM directory it is in (else a memfd). */
export type QemuRam = Pick<SharedRam, "sizeBytes" | "dir">;

/**
 * Looks for QEMU `pid`'s guest RAM every QEMU_MEMFD_POLL_MS, until found, QEMU is up without
 * it, QEMU exits, or `signal` aborts (a restore that failed aborts it).
 */
export function findQemuRam(pid: number, ram: QemuRam, signal?: AbortSignal): RamSearch {
  let up = false;
  const prefix =
    ram.dir === undefined ? `/memfd:${QEMU_MEMFD_NAME} ` : `${ram.dir}/${QEMU_RAM_FILE_PREFIX}`;
  const what = ram.dir === undefined ? `a ${QEMU_MEMFD_NAME} memfd` : `a file in ${ram.dir}`;
  const search = async (): Promise<FileHandle> => {
    for (;;) {
      const lastLook = up;
      if (signal?.aborted) throw abortError(signal);
      const fd = await ramFdOf(pid, prefix, what);
      if (fd !== null) return openRam(pid, fd, ram.sizeBytes);
      if (lastLook) {
        throw new Error(
          `QEMU (pid ${pid}) is up without ${what} among its descriptors ` +
            "(a wrapper that runs QEMU as its child, or a QEMU that names it otherwise)",
        );
      }
      await sleep(QEMU_MEMFD_POLL_MS);
    }
  };
  const found = search();
  found.catch(() => undefined); // the caller awaits it, or drops it with the failed restore
  return {
    found,
    qemuUp: () => {
      up = true;
    },
  };
}

/** The descriptor number of QEMU's file linked as `prefix`…, or null while it has none yet. */
async function ramFdOf(pid: number, prefix: string, what: string): Promise<string | null> {
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch (error) {
    if (errorCode(error) !== "ENOENT") throw error;
    throw new Error(`QEMU (pid ${pid}) exited before it made the guest's RAM`);
  }
  const named: string[] = [];
  for (const fd of fds) {
    const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ""); // closed meanwhile
    if (link.startsWith(prefix)) named.push(fd);
  }
  if (named.length > 1) {
    throw new Error(`QEMU (pid ${pid}) has ${named.length} descriptors of ${what}, not one`);
  }
  return named[0] ?? null;
}

async function openRam(pid: number, fd: string, lengthBytes: number): Promise<FileHandle> {
  const file = await open(`/proc/${pid}/fd/${fd}`, "r+");
  try {
    const { size } = await file.stat();
    if (size !== lengthBytes) {
      throw new Error(
        `QEMU's guest RAM file has ${size} bytes, the checkpoint's block ${lengthBytes}`,
      );
    }
    return file;
  } catch (error) {
    await file.close();
    throw error;
  }
}
