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

/** A named version: "10.0" (unpacked into build/ by scripts/setup.sh) or "7.2" (the system's). */
export function qemuVersion(version: "10.0" | "7.2"): QemuInstall {
  return resolveQemuChoice(version, BUILD_DIR);
}
