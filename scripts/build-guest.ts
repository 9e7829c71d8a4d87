/**
 * Builds the test guest into build/guest/ (see docs/guest.md): vmlinuz, vmlinux (its
 * uncompressed ELF, for PVH boot), initrd.img, data.img, guest.json. Idempotent and fast
 * when nothing changed: a SHA-256 of every input (guest sources, these build scripts,
 * kernel, modules, busybox, tool versions, data-disk parameters, output dir) is compared
 * with build/guest/stamp, which is written last.
 * Run: node_modules/.bin/node scripts/build-guest.ts [--force]
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  BUILD_ENV,
  dataImageBytes,
  makeExt4Image,
  writeDataDir,
} from "../guest/builder/data-disk.ts";
import { buildInitramfs } from "../guest/builder/initramfs.ts";
import { extractVmlinux, kernelHasPvh } from "../guest/builder/kernel-image.ts";
import { moduleName, resolveModules } from "../guest/builder/kernel-modules.ts";
import { DATA_DISK_DEFAULT, type GuestInfo, guestArtifacts } from "../guest/host/artifacts.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BUSYBOX = "/bin/busybox";
/**
 * Loaded by /init in this order (after their dependencies); crc32c is ext4's softdep.
 * virtio_balloon lets a VM with a virtio-balloon device hint its free pages during a save.
 */
const WANTED_MODULES = ["crc32c_generic", "virtio_pci", "virtio_blk", "ext4", "virtio_balloon"];
/**
 * Files whose content defines the build: what runs in the guest, the builder, and the two host
 * files that fix paths and defaults. The rest of guest/host/ (the agent client, TTR) is not
 * built into the guest, so changing it rebuilds nothing.
 */
const BUILD_SOURCES = [
  "scripts/build-guest.ts",
  "guest/init",
  "guest/src",
  "guest/builder",
  "guest/host/artifacts.ts",
  "guest/host/limits.ts",
];
const CFLAGS = [
  "-static",
  "-O2",
  "-pthread",
  "-Wall",
  "-Wextra",
  "-s",
  `-ffile-prefix-map=${ROOT}=.`,
];

interface Kernel {
  version: string;
  image: string;
  config: string;
  modulesDir: string;
}

/** Newest /boot/vmlinuz-<ver> that has /lib/modules/<ver>/modules.dep. */
async function findKernel(): Promise<Kernel> {
  const versions = (await readdir("/boot"))
    .filter((f) => f.startsWith("vmlinuz-"))
    .map((f) => f.slice("vmlinuz-".length))
    .sort((a, b) => b.localeCompare(a, "en", { numeric: true }));
  for (const version of versions) {
    const modulesDir = `/lib/modules/${version}`;
    if (await exists(path.join(modulesDir, "modules.dep")))
      return {
        version,
        image: `/boot/vmlinuz-${version}`,
        config: `/boot/config-${version}`,
        modulesDir,
      };
  }
  throw new Error(
    "Cannot find a kernel with modules in /boot and /lib/modules: apt-get install linux-image-amd64",
  );
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** Files under each path (recursively), repo-relative, sorted. */
async function listFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const rel of paths) {
    const abs = path.join(ROOT, rel);
    if ((await stat(abs)).isDirectory()) {
      const names = await readdir(abs, { recursive: true, withFileTypes: true });
      for (const d of names)
        if (d.isFile()) out.push(path.relative(ROOT, path.join(d.parentPath, d.name)));
    } else out.push(rel);
  }
  return out.sort();
}

function toolVersion(cmd: string, args: string[]): string {
  return (
    execFileSync(cmd, args, { env: BUILD_ENV, encoding: "utf8", stdio: "pipe" }).split("\n")[0] ??
    ""
  );
}

async function inputsHash(
  kernel: Kernel,
  modules: readonly string[],
  outDir: string,
): Promise<string> {
  const h = createHash("sha256");
  const add = (label: string, data: string | Uint8Array) => {
    h.update(`${label}\0${data.length}\0`);
    h.update(data);
  };
  for (const file of await listFiles(BUILD_SOURCES))
    add(file, await readFile(path.join(ROOT, file)));
  add("kernel", await readFile(kernel.image));
  add("kernel-config", await readFile(kernel.config).catch(() => ""));
  add("kernel-version", kernel.version);
  for (const m of modules) add(m, await readFile(path.join(kernel.modulesDir, m)));
  add("busybox", await readFile(BUSYBOX));
  add("gcc", toolVersion("gcc", ["--version"]));
  add(
    "mke2fs",
    execFileSync("mke2fs", ["-V"], { env: BUILD_ENV, encoding: "utf8", stdio: "pipe" }),
  );
  add("data-disk", JSON.stringify(DATA_DISK_DEFAULT));
  add("out-dir", outDir);
  return h.digest("hex");
}

async function upToDate(hash: string): Promise<boolean> {
  const a = guestArtifacts();
  const stamp = await readFile(a.stamp, "utf8").catch(() => "");
  if (stamp.trim() !== hash) return false;
  for (const file of [a.kernel, a.initrd, a.dataDisk, a.info])
    if (!(await exists(file))) return false;
  return true;
}

async function compileSwagent(tmp: string): Promise<Uint8Array> {
  const srcDir = path.join(ROOT, "guest/src");
  const sources = (await readdir(srcDir)).filter((f) => f.endsWith(".c")).sort();
  const out = path.join(tmp, "swagent");
  execFileSync("gcc", [...CFLAGS, "-o", out, ...sources.map((f) => path.join(srcDir, f))], {
    env: BUILD_ENV,
    stdio: ["ignore", "inherit", "inherit"],
  });
  return readFile(out);
}

async function loadModules(kernel: Kernel, loadOrder: readonly string[]) {
  const modules = [];
  for (const rel of loadOrder) {
    if (!rel.endsWith(".ko"))
      throw new Error(
        `Cannot put compressed module ${rel} in the initramfs: busybox insmod needs .ko`,
      );
    modules.push({
      name: `${moduleName(rel)}.ko`,
      data: await readFile(path.join(kernel.modulesDir, rel)),
    });
  }
  return modules;
}

/** The uncompressed ELF of the kernel; booting it skips ~3 s of decompression under TCG. */
async function pvhKernel(kernel: Kernel, tmp: string): Promise<Buffer> {
  const fix = "install a Debian kernel (CONFIG_PVH=y, xz-compressed) or boot vmlinuz by hand";
  if (!(await kernelHasPvh(kernel.config)))
    throw new Error(
      `Cannot boot ${kernel.image} via PVH: ${kernel.config} lacks CONFIG_PVH=y; ${fix}`,
    );
  const elf = await extractVmlinux(await readFile(kernel.image), tmp);
  if (elf === undefined)
    throw new Error(`Cannot find an xz-compressed vmlinux inside ${kernel.image}; ${fix}`);
  return elf;
}

async function build(kernel: Kernel, loadOrder: string[], hash: string): Promise<void> {
  const a = guestArtifacts();
  const tmp = path.join(a.dir, `tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const t0 = performance.now();
    const initrd = buildInitramfs({
      init: await readFile(path.join(ROOT, "guest/init")),
      busybox: await readFile(BUSYBOX),
      swagent: await compileSwagent(tmp),
      modules: await loadModules(kernel, loadOrder),
    });
    await writeFile(path.join(tmp, "initrd.img"), initrd);
    await copyFile(kernel.image, path.join(tmp, "vmlinuz"));
    await writeFile(path.join(tmp, "vmlinux"), await pvhKernel(kernel, tmp));
    const t1 = performance.now();
    const data = await writeDataDir(path.join(tmp, "data"), DATA_DISK_DEFAULT);
    const imageBytes = dataImageBytes(data.totalBytes);
    await makeExt4Image(path.join(tmp, "data"), path.join(tmp, "data.img"), imageBytes);
    const t2 = performance.now();
    await rm(a.stamp, { force: true });
    for (const f of [a.kernel, a.initrd, a.dataDisk])
      await rename(path.join(tmp, path.basename(f)), f);
    const info: GuestInfo = {
      formatVersion: 1,
      kernelVersion: kernel.version,
      kernel: a.kernel,
      vmlinuz: a.vmlinuz,
      initrd: a.initrd,
      dataDisk: a.dataDisk,
      dataDiskBytes: imageBytes,
      dataFiles: data.entries.length,
      dataBytes: data.totalBytes,
      modules: loadOrder,
      inputsHash: hash,
    };
    await writeFile(a.info, `${JSON.stringify(info, null, 2)}\n`);
    await writeFile(a.stamp, `${hash}\n`);
    const ms = (x: number) => `${Math.round(x)} ms`;
    console.log(
      `build-guest: built ${a.dir} (kernel ${kernel.version}, initrd ${initrd.length} bytes in ` +
        `${ms(t1 - t0)}, data ${data.entries.length} files ${data.totalBytes} bytes in ${ms(t2 - t1)})`,
    );
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const force = process.argv.includes("--force");
  const kernel = await findKernel();
  const table = (name: string) => readFile(path.join(kernel.modulesDir, name), "utf8");
  const { loadOrder } = resolveModules(
    {
      dep: await table("modules.dep"),
      builtin: await table("modules.builtin"),
      softdep: await table("modules.softdep"),
      alias: await table("modules.alias"),
    },
    WANTED_MODULES,
  );
  const a = guestArtifacts();
  await mkdir(a.dir, { recursive: true });
  const hash = await inputsHash(kernel, loadOrder, a.dir);
  if (!force && (await upToDate(hash))) {
    console.log(`build-guest: ${a.dir} is up to date`);
    return;
  }
  await build(kernel, loadOrder, hash);
}

await main();
