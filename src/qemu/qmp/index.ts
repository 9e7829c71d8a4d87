/** QMP: the typed control channel to a QEMU process. Raw QMP JSON never leaves this folder. */
export {
  type ExecuteOptions,
  QmpClient,
  QmpCommandError,
  type QmpConnectOptions,
} from "./client.ts";
export type {
  BlockdevSnapshotSyncArgs,
  BlockInfo,
  Empty,
  MigrateSetParameters,
  MigrationCapability,
  MigrationCapabilityStatus,
  MigrationInfo,
  MigrationRamStats,
  MigrationStatus,
  QmpArgs,
  QmpCommandName,
  QmpCommands,
  QmpReturns,
  RunState,
  StatusInfo,
  VersionInfo,
} from "./commands.ts";
export type { QmpEvent, QmpEventName, QmpEvents } from "./events.ts";
export { describeQemuLog } from "./qemu-log.ts";
export type { WaitForMigrationOptions } from "./wait-for-migration.ts";
