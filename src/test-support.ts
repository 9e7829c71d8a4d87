/**
 * Helpers shared by unit and integration tests (not part of dist/: tsconfig.build.json).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { setImmediate as nextTurn } from "node:timers/promises";

/**
 * Runs `fn` on a fresh directory that is a tmpfs of `sizeMiB` (a disk that fills up), then
 * unmounts and removes it. Mounting needs root: without it the test is skipped, saying why.
 */
export async function withSmallTmpfs(
  t: TestContext,
  sizeMiB: number,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "snapwake-tmpfs-"));
  try {
    try {
      const size = `size=${sizeMiB}m`;
      execFileSync("mount", ["-t", "tmpfs", "-o", size, "tmpfs", dir], { stdio: "ignore" });
    } catch {
      t.skip("mounting a small tmpfs needs root");
      return;
    }
    try {
      await fn(dir);
    } finally {
      execFileSync("umount", [dir]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Settles once Node has checked every promise rejected so far for a handler, i.e. once an
 * "unhandledRejection" for any of them has been emitted. This is a condition, not a time:
 * Node makes that check when the microtask queue of the current event-loop turn has drained
 * (a rejection is unhandled when no handler is attached "within a turn of the event loop"),
 * and a setImmediate callback runs only after that. Rejections made later (by I/O still to
 * come) are not covered: wait for that I/O's own event first.
 */
export async function rejectionsChecked(): Promise<void> {
  await nextTurn();
}
