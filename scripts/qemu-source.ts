/**
 * Prints where scripts/setup.sh gets QEMU 10.0, the reference, on this host: "backports"
 * (Debian 12: unpack bookworm-backports' package into build/qemu-10.0) or "system" (Debian
 * 13: the system QEMU from main is 10.0). The table is qemuSourcesFor (src/vm/qemu-install.ts).
 * On a release it does not know: "given" when SNAPWAKE_QEMU names the QEMU to use, else exits
 * 1 with a message.
 */
import { hostCodename, qemuSourcesFor } from "../src/vm/index.ts";

const codename = hostCodename();
const sources = qemuSourcesFor(codename);
if (sources === null && (process.env.SNAPWAKE_QEMU ?? "") !== "") {
  console.log("given");
} else if (sources === null) {
  console.error(
    `setup: unsupported release "${codename}" (/etc/os-release VERSION_CODENAME): setup knows ` +
      "Debian 12 (bookworm) and 13 (trixie). Elsewhere install QEMU 10.0 yourself and set " +
      "SNAPWAKE_QEMU to its qemu-system-x86_64",
  );
  process.exit(1);
} else {
  console.log(sources.reference);
}
