/**
 * The initramfs: busybox (and the applet links /init uses), swagent, /init, the kernel
 * modules flattened into /lib/modules with their load order, and /dev/console so PID 1 has
 * a console before devtmpfs is mounted. gzip'd newc, byte-for-byte reproducible.
 */
import { gzipSync } from "node:zlib";
import { type CpioEntry, writeCpio } from "./cpio.ts";

/** Applets /init and a debugging human need; busybox dispatches on argv[0]. */
const APPLETS = [
  "sh",
  "mount",
  "umount",
  "insmod",
  "lsmod",
  "sleep",
  "cat",
  "ls",
  "dmesg",
  "mkdir",
  "ps",
  "free",
  "grep",
  "echo",
  "test",
  "[",
  "stat",
  "sync",
] as const;

export interface InitramfsInputs {
  init: Uint8Array;
  busybox: Uint8Array;
  swagent: Uint8Array;
  /** Kernel modules in load order; names must be unique (they are flattened). */
  modules: readonly { name: string; data: Uint8Array }[];
}

/** /lib/modules/load-order: one file name per line, read by /init. */
export const LOAD_ORDER_PATH = "lib/modules/load-order";

export function initramfsEntries(inputs: InitramfsInputs): CpioEntry[] {
  const dirs = ["bin", "dev", "proc", "sys", "data", "tmp", "lib", "lib/modules"];
  const loadOrder = inputs.modules.map((m) => `${m.name}\n`).join("");
  return [
    ...dirs.map((path): CpioEntry => ({ kind: "dir", path, mode: 0o755 })),
    { kind: "chardev", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
    { kind: "file", path: "init", mode: 0o755, data: inputs.init },
    { kind: "file", path: "bin/busybox", mode: 0o755, data: inputs.busybox },
    { kind: "file", path: "bin/swagent", mode: 0o755, data: inputs.swagent },
    ...APPLETS.map((a): CpioEntry => ({ kind: "symlink", path: `bin/${a}`, target: "busybox" })),
    ...inputs.modules.map(
      (m): CpioEntry => ({
        kind: "file",
        path: `lib/modules/${m.name}`,
        mode: 0o644,
        data: m.data,
      }),
    ),
    { kind: "file", path: LOAD_ORDER_PATH, mode: 0o644, data: new TextEncoder().encode(loadOrder) },
  ];
}

/** gzip'd newc archive; zlib writes mtime 0 in the gzip header, so output is stable. */
export function buildInitramfs(inputs: InitramfsInputs): Uint8Array {
  return gzipSync(writeCpio(initramfsEntries(inputs)), { level: 9 });
}
