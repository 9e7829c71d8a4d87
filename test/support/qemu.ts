/**
 * The QEMU the tests, demo and bench run: SNAPWAKE_QEMU (10.0, 7.2 or a path), default 10.0,
 * the reference version. Tests that must also pass on the other version name it explicitly.
 */
import { join } from "node:path";
import { type QemuInstall, resolveQemuChoice } from "../../src/vm/index.ts";

const BUILD_DIR = join(import.meta.dirname, "..", "..", "build");

/** The reference QEMU unless SNAPWAKE_QEMU names another. */
export function defaultQemu(): QemuInstall {
  return resolveQemuChoice(process.env.SNAPWAKE_QEMU ?? "10.0", BUILD_DIR);
}

/**
 * QEMU 10.0: unpacked into build/ by scripts/setup.sh on Debian 12, the system's on Debian 13
 * (src/vm/qemu-install.ts, qemuSourcesFor).
 */
export function qemu10(): QemuInstall {
  return resolveQemuChoice("10.0", BUILD_DIR);
}

/** Names the QEMU 7.2 binary where the host has none (Debian 13 ships 10.0 only). */
export const QEMU_7_2_VARIABLE = "SNAPWAKE_QEMU_7_2";

/**
 * QEMU 7.2: SNAPWAKE_QEMU_7_2 (an absolute path to a 7.2 qemu-system-x86_64) when set, else
 * the system QEMU where that is 7.2 (Debian 12); otherwise `skip`, a message saying why there
 * is none and how to provide one, for node:test's `skip` option (shown in the test output).
 */
export function qemu72(): { qemu: QemuInstall; skip: false } | { qemu: null; skip: string } {
  const path = process.env[QEMU_7_2_VARIABLE] ?? "";
  if (path !== "") return { qemu: resolveQemuChoice(path, BUILD_DIR), skip: false };
  try {
    return { qemu: resolveQemuChoice("7.2", BUILD_DIR), skip: false };
  } catch (error) {
    const why = error instanceof Error ? error.message.split(":")[0] : String(error);
    return {
      qemu: null,
      skip:
        `${why}: set ${QEMU_7_2_VARIABLE} to the absolute path of a QEMU 7.2 ` +
        "qemu-system-x86_64 (e.g. Debian 12's, unpacked with dpkg -x) to run this test",
    };
  }
}
