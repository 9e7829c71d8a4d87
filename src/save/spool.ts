/**
 * The spool: a save whose guest runs again afterwards has QEMU write its migration stream to a
 * file under the store's tmp/, as QEMU's own save to a file does, and reads it from there once
 * the guest runs again (ADR 0033). The guest is then paused only as long as QEMU takes to write
 * the stream, not as long as snapwake takes to hash, compress and check it.
 *
 * Invariants: the spool file is named like every temp entry of this process (gc removes it
 * once the process is gone); it is spooled only when the store's disk has room for it and for
 * the checkpoint besides (SAVE_SPOOL_ROOM_FACTOR); otherwise the save streams over its socket.
 */
import { createReadStream } from "node:fs";
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import type { Readable } from "node:stream";
import type { CheckpointStore } from "../checkpoint/index.ts";
import { QemuError } from "../errors.ts";
import {
  SAVE_SPOOL_READ_BYTES,
  SAVE_SPOOL_ROOM_FACTOR,
  SAVE_SPOOL_ROOM_MARGIN_BYTES,
} from "../limits.ts";
import type { VersionInfo } from "../qemu/qmp/index.ts";

/**
 * A fresh spool path under the store's tmp/ when its disk has room for a stream of a guest of
 * `memoryBytes` and the checkpoint besides; null when it has not (the save then streams).
 */
export async function spoolPath(
  store: CheckpointStore,
  memoryBytes: number,
): Promise<string | null> {
  const path = `${await store.newTempPath()}.stream`;
  const free = await freeBytes(store.tempDir);
  return free >= memoryBytes * SAVE_SPOOL_ROOM_FACTOR + SAVE_SPOOL_ROOM_MARGIN_BYTES ? path : null;
}

/**
 * The migration URI that makes QEMU write its stream to `path`: `file:` where QEMU has it (8.2
 * and later): QEMU creates the file before `migrate` returns, with no shell, and wrote a 256 MiB
 * guest's stream in 123–153 ms against 246–253 ms through `cat`. QEMU 7.2, and a path `file:`
 * cannot carry (a comma starts its options), go through `exec:cat`, single-quoted for the shell.
 */
export function spoolUri(path: string, qemu: VersionInfo["qemu"]): string {
  const hasFile = qemu.major > 8 || (qemu.major === 8 && qemu.minor >= 2);
  if (hasFile && !path.includes(",")) return `file:${path}`;
  return `exec:cat > ${shellQuote(path)}`;
}

/** The spooled stream, read in large pieces. */
export function readSpool(path: string): Readable {
  return createReadStream(path, { highWaterMark: SAVE_SPOOL_READ_BYTES });
}

/**
 * Why QEMU failed to write the spool, when it is the disk: a QemuError naming the space left;
 * else the error itself.
 */
export async function explainSpoolFailure(error: unknown, path: string): Promise<unknown> {
  if (!(error instanceof QemuError)) return error;
  const free = await freeBytes(dirname(path)).catch(() => Number.POSITIVE_INFINITY);
  if (free >= SAVE_SPOOL_ROOM_MARGIN_BYTES) return error;
  return new QemuError(
    `QEMU could not write its migration stream to ${path}: the disk is full ` +
      `(${Math.floor(free / 2 ** 20)} MiB left). Free space on the store's disk and save again; ` +
      "the guest runs on and nothing was listed",
    { cause: error },
  );
}

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** A POSIX shell word for `s`: single-quoted, with each ' spelled '\''. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}
