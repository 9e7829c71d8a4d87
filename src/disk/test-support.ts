/**
 * Shared by the disk tests (not part of the public surface): temp directories, images made
 * with the real qemu-img and qemu-io, and recognisable block contents.
 */
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { PAGE_SIZE_BYTES } from "../limits.ts";

export interface TempDir {
  readonly dir: string;
  cleanup(): Promise<void>;
}

export async function tempDir(): Promise<TempDir> {
  const dir = await mkdtemp(join(os.tmpdir(), "snapwake-disk-test-"));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Block n of a test disk: 4 KiB that name their block, distinct per seed. */
export function block(n: number, seed = 1): Buffer {
  return Buffer.alloc(PAGE_SIZE_BYTES, `seed ${seed} block ${n} `);
}

export function sha256(bytes: Uint8Array): Buffer {
  return crypto.hash("sha256", bytes, "buffer");
}

/**
 * A raw image of `blocks` 4 KiB blocks: block(n) where `filled(n)`, zeros elsewhere; and its
 * qcow2 conversion (zero clusters stay unallocated). Returns both paths.
 */
export async function makeImages(
  dir: string,
  blocks: number,
  filled: (n: number) => boolean,
): Promise<{ raw: string; qcow2: string; content: Buffer }> {
  const content = Buffer.alloc(blocks * PAGE_SIZE_BYTES);
  for (let n = 0; n < blocks; n++) if (filled(n)) block(n).copy(content, n * PAGE_SIZE_BYTES);
  const raw = join(dir, "disk.raw");
  const qcow2 = join(dir, "disk.qcow2");
  await writeFile(raw, content);
  qemuImg("convert", "-f", "raw", "-O", "qcow2", raw, qcow2);
  return { raw, qcow2, content };
}

export function qemuImg(...args: string[]): string {
  return execFileSync("qemu-img", args, { encoding: "utf8" });
}

/** Runs qemu-io commands (e.g. "write -P 0xab 1M 64k") on a qcow2 image. */
export function qemuIo(image: string, ...commands: string[]): void {
  execFileSync("qemu-io", ["-f", "qcow2", ...commands.flatMap((c) => ["-c", c]), image]);
}
