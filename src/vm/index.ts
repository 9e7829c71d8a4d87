/** Managed QEMU VMs: the spec a user writes, QEMU's command line, and the VMs' lifecycle. */
export {
  buildQemuArgs,
  QEMU_BINARY_DEFAULT,
  QEMU_MEMFD_NAME,
  QEMU_RAM_FILE_PREFIX,
  type QemuRuntime,
  qemuFor,
  type RamFile,
  resolveQemuBinary,
  type SharedRam,
} from "./command-line.ts";
export { attachStartingVm, killVm, openVm, stopVm } from "./control.ts";
export {
  type LaunchedVm,
  launchVm,
  type ManagedVm,
  QEMU_INCOMING_FD,
  QEMU_RAM_FILE_FD,
  type StartVmOptions,
  startVm,
} from "./launcher.ts";
export { type KnownMachineTypes, machineTypes } from "./machine-types.ts";
export { readOrigin, type VmOrigin, writeOrigin } from "./origin.ts";
export {
  dataDirArgs,
  hostCodename,
  QEMU_CHOICES,
  type QemuInstall,
  type QemuSources,
  qemuEnv,
  qemuSourcesFor,
  resolveQemuChoice,
  SYSTEM_QEMU,
  unpackedQemu,
} from "./qemu-install.ts";
export { listVms, type VmListing } from "./registry.ts";
export {
  type Accel,
  type DiskFormat,
  type DiskInterface,
  type DiskSpec,
  loadVmSpec,
  type ParseVmSpecOptions,
  parseVmSpec,
  type VmSpec,
} from "./spec.ts";
export { type VmStatePaths, vmPaths } from "./state-dir.ts";
