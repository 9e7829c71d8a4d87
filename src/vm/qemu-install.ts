/**
 * Which QEMU runs a VM: a binary and the directories it loads firmware, option ROMs and
 * keymaps from (`-L`, in order). A setting, never guessed by the library: a VM spec's `qemu`
 * field, or a caller's choice (the CLI's SNAPWAKE_QEMU, the tests' and bench's default).
 *
 * Invariants: a QemuInstall is normalized (binary non-empty, dataDirs absolute); the system
 * install is `qemu-system-x86_64` on PATH with no -L (it finds its own files).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { UsageError } from "../errors.ts";

export interface QemuInstall {
  /** A program name (looked up on PATH) or an absolute path. */
  readonly binary: string;
  /** `-L` directories, searched in order; empty for a system install. */
  readonly dataDirs: readonly string[];
  /**
   * Where its loadable modules are (QEMU_MODULE_DIR); absent for a system install. Without
   * it an unpacked QEMU tries the system QEMU's modules and complains ("Only modules from
   * the same build can be loaded").
   */
  readonly moduleDir?: string;
}

/** The QEMU binary used unless the caller names another. */
export const QEMU_BINARY_DEFAULT = "qemu-system-x86_64";

/** The system QEMU (Debian 12: 7.2, Debian 13: 10.0), found on PATH. */
export const SYSTEM_QEMU: QemuInstall = { binary: QEMU_BINARY_DEFAULT, dataDirs: [] };

/** Where SeaBIOS lives on Debian; an unpacked QEMU package has no BIOS of its own. */
const SEABIOS_DIR = "/usr/share/seabios";

/**
 * A QEMU package unpacked with `dpkg -x` into `root` (scripts/setup.sh puts QEMU 10.0 in
 * build/qemu-10.0): its binary, its own data files first, then the system SeaBIOS.
 */
export function unpackedQemu(root: string): QemuInstall {
  const absolute = resolve(root);
  return {
    binary: join(absolute, "usr", "bin", "qemu-system-x86_64"),
    dataDirs: [join(absolute, "usr", "share", "qemu"), SEABIOS_DIR],
    moduleDir: join(absolute, "usr", "lib", "x86_64-linux-gnu", "qemu"),
  };
}

/** The versions a choice may name, and where the unpacked ones live under the build dir. */
export const QEMU_CHOICES = ["10.0", "7.2"] as const;

/** Where the two supported QEMUs come from on a Debian release. */
export interface QemuSources {
  /**
   * QEMU 10.0, the reference: "backports" is Debian 12's bookworm-backports package unpacked
   * into `<buildDir>/qemu-10.0` by scripts/setup.sh; "system" is the installed QEMU.
   */
  readonly reference: "backports" | "system";
  /** The version of the system QEMU (`qemu-system-x86_64` on PATH). */
  readonly system: "7.2" | "10.0";
}

/**
 * The QEMU sources of a Debian release by its codename (os-release's VERSION_CODENAME), or
 * null for a release snapwake's setup does not know. Debian 12 (bookworm) ships 7.2 and has
 * 10.0 in bookworm-backports; Debian 13 (trixie) ships 10.0 and has no 7.2. scripts/setup.sh
 * follows this table (scripts/qemu-source.ts).
 */
export function qemuSourcesFor(codename: string): QemuSources | null {
  if (codename === "bookworm") return { reference: "backports", system: "7.2" };
  if (codename === "trixie") return { reference: "system", system: "10.0" };
  return null;
}

/** This host's release codename (VERSION_CODENAME of os-release), "" when it names none. */
export function hostCodename(osRelease = "/etc/os-release"): string {
  let text = "";
  try {
    text = readFileSync(osRelease, "utf8");
  } catch {
    return "";
  }
  const line = text.split("\n").find((l) => l.startsWith("VERSION_CODENAME="));
  return (line?.slice("VERSION_CODENAME=".length) ?? "").trim().replace(/^"(.*)"$/, "$1");
}

/**
 * Resolves a QEMU choice: "7.2", "10.0", or a path to a qemu-system-x86_64 binary (an
 * unpacked package's `usr/share/qemu` next to it is used as its data dir). Which install a
 * version names depends on the release (`codename`, default this host's; qemuSourcesFor):
 * on Debian 12 "7.2" is the system QEMU and "10.0" the one unpacked under
 * `<buildDir>/qemu-10.0`; on Debian 13 "10.0" is the system QEMU and "7.2" names none. An
 * unknown release is treated like Debian 12. Throws UsageError saying what to do when the
 * choice names nothing usable.
 */
export function resolveQemuChoice(
  choice: string,
  buildDir: string,
  codename: string = hostCodename(),
): QemuInstall {
  const sources = qemuSourcesFor(codename) ?? { reference: "backports", system: "7.2" };
  if (choice === "7.2") {
    if (sources.system === "7.2") return SYSTEM_QEMU;
    throw new UsageError(
      `This host (${codename}) has no QEMU 7.2: its system QEMU is ${sources.system}. ` +
        "Set SNAPWAKE_QEMU to the absolute path of a 7.2 qemu-system-x86_64",
    );
  }
  if (choice === "10.0") {
    if (sources.reference === "system") return SYSTEM_QEMU;
    const install = unpackedQemu(join(buildDir, "qemu-10.0"));
    if (!existsSync(install.binary)) {
      throw new UsageError(
        `QEMU 10.0 is not unpacked at ${install.binary}; run \`npm run setup\` ` +
          "(it unpacks Debian's bookworm-backports package there) or choose SNAPWAKE_QEMU=7.2",
      );
    }
    return install;
  }
  if (!isAbsolute(choice)) {
    throw new UsageError(
      `SNAPWAKE_QEMU: expected ${QEMU_CHOICES.join(" or ")} or an absolute path to ` +
        `qemu-system-x86_64, got "${choice}"`,
    );
  }
  if (!existsSync(choice)) throw new UsageError(`SNAPWAKE_QEMU: no file at ${choice}`);
  const data = resolve(dirname(choice), "..", "share", "qemu");
  const unpacked = existsSync(data) && data !== "/usr/share/qemu";
  return unpacked
    ? unpackedQemu(resolve(dirname(choice), "..", ".."))
    : { binary: choice, dataDirs: [] };
}

/** The environment QEMU runs with: the caller's, plus the install's module dir. */
export function qemuEnv(install: QemuInstall, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return install.moduleDir === undefined ? base : { ...base, QEMU_MODULE_DIR: install.moduleDir };
}

/**
 * The program and argv that run `install` with `args`, its module dir set through env(1),
 * which execs QEMU in place (same pid) and leaves the rest of the environment as inherited.
 */
export function qemuCommand(
  install: QemuInstall,
  binary: string,
  args: string[],
): [string, string[]] {
  if (install.moduleDir === undefined) return [binary, args];
  return ["env", [`QEMU_MODULE_DIR=${install.moduleDir}`, binary, ...args]];
}

/** QEMU's arguments for the install's data dirs. */
export function dataDirArgs(install: QemuInstall): string[] {
  return install.dataDirs.flatMap((dir) => ["-L", dir]);
}
