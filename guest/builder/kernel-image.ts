/**
 * The uncompressed kernel for PVH boot. QEMU boots an ELF vmlinux with a PVH entry note
 * directly, skipping the bzImage's real-mode setup and its in-guest xz decompression, which
 * under TCG takes ~3 s of a ~8 s boot. Debian's bzImage carries vmlinux as one xz stream
 * (CONFIG_KERNEL_XZ); `xz --single-stream` stops at its end and ignores the trailer.
 */
import { execFileSync } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { BUILD_ENV } from "./data-disk.ts";

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
/** A false magic match in the setup code is possible in theory; try a few. */
const XZ_CANDIDATES_MAX = 4;
/** vmlinux of a distribution kernel is ~70 MiB; bound the decompressor's output. */
const VMLINUX_BYTES_MAX = 512 * 1024 * 1024;

/** Whether /boot/config-<version> says the kernel has a PVH entry point. */
export async function kernelHasPvh(configPath: string): Promise<boolean> {
  const config = await readFile(configPath, "utf8").catch(() => "");
  return /^CONFIG_PVH=y$/m.test(config);
}

/**
 * The ELF inside a bzImage, or undefined if no xz stream in it decompresses to one.
 * Candidates go through a file in tmpDir: xz stops reading a pipe at the stream's end, and
 * the unread trailer would fail the write with EPIPE.
 */
export async function extractVmlinux(bzImage: Buffer, tmpDir: string): Promise<Buffer | undefined> {
  const candidate = path.join(tmpDir, "vmlinux.xz");
  try {
    let at = bzImage.indexOf(XZ_MAGIC);
    for (let tries = 0; at >= 0 && tries < XZ_CANDIDATES_MAX; tries++) {
      await writeFile(candidate, bzImage.subarray(at));
      const elf = decompressXz(candidate);
      if (elf?.subarray(0, ELF_MAGIC.length).equals(ELF_MAGIC)) return elf;
      at = bzImage.indexOf(XZ_MAGIC, at + 1);
    }
    return undefined;
  } finally {
    await rm(candidate, { force: true });
  }
}

function decompressXz(file: string): Buffer | undefined {
  try {
    return execFileSync("xz", ["--decompress", "--stdout", "--single-stream", file], {
      env: BUILD_ENV,
      maxBuffer: VMLINUX_BYTES_MAX,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch {
    return undefined; // not an xz stream after all; the caller tries the next match
  }
}
