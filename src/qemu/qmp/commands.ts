/**
 * The QMP commands snapwake uses, typed after QEMU 7.2's QAPI schema (qapi/*.json). This map is
 * the boundary: callers see these types, never raw QMP JSON. Only the fields snapwake reads are
 * spelled out; the rest of a reply is still present at run time but not promised here.
 * Later QEMU versions add fields and deprecate a few (docs/migration-protocol.md §12); none
 * used here.
 */

/** No arguments / an empty reply. */
export type Empty = Record<string, never>;

/** qapi/run-state.json `RunState`. */
export type RunState =
  | "debug"
  | "inmigrate"
  | "internal-error"
  | "io-error"
  | "paused"
  | "postmigrate"
  | "prelaunch"
  | "finish-migrate"
  | "restore-vm"
  | "running"
  | "save-vm"
  | "shutdown"
  | "suspended"
  | "watchdog"
  | "guest-panicked"
  | "colo";

export interface StatusInfo {
  status: RunState;
  running: boolean;
  /** Deprecated in 8.1, gone in 9.0. */
  singlestep?: boolean;
}

export interface VersionInfo {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

/** qapi/migration.json `MigrationStatus`. */
export type MigrationStatus =
  | "none"
  | "setup"
  | "cancelling"
  | "cancelled"
  | "active"
  | "postcopy-active"
  | "postcopy-paused"
  | "postcopy-recover"
  | "completed"
  | "failed"
  | "colo"
  | "pre-switchover"
  | "device"
  | "wait-unplug";

/** qapi/migration.json `MigrationStats` (the `ram` member of query-migrate), in bytes and pages. */
export interface MigrationRamStats {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  "normal-bytes": number;
  "dirty-pages-rate": number;
  mbps: number;
  "dirty-sync-count": number;
  "postcopy-requests": number;
  "page-size": number;
  "multifd-bytes": number;
  "pages-per-second": number;
  "precopy-bytes": number;
  "downtime-bytes": number;
  "postcopy-bytes": number;
}

/** query-migrate's reply. Empty (no `status`) before any migration ran in this QEMU. */
export interface MigrationInfo {
  status?: MigrationStatus;
  ram?: MigrationRamStats;
  "total-time"?: number;
  "expected-downtime"?: number;
  downtime?: number;
  "setup-time"?: number;
  "error-desc"?: string;
  "postcopy-blocktime"?: number;
}

/** qapi/migration.json `MigrationCapability` (7.2). */
export type MigrationCapability =
  | "xbzrle"
  | "rdma-pin-all"
  | "auto-converge"
  | "zero-blocks"
  | "compress"
  | "events"
  | "postcopy-ram"
  | "x-colo"
  | "release-ram"
  | "block"
  | "return-path"
  | "pause-before-switchover"
  | "multifd"
  | "dirty-bitmaps"
  | "postcopy-blocktime"
  | "late-block-activate"
  | "x-ignore-shared"
  | "validate-uuid"
  | "background-snapshot"
  | "zero-copy-send"
  | "postcopy-preempt"
  | "switchover-ack";

export interface MigrationCapabilityStatus {
  capability: MigrationCapability;
  state: boolean;
}

/** The migrate-set-parameters members snapwake sets (bytes per second, milliseconds). */
export interface MigrateSetParameters {
  "max-bandwidth"?: number;
  "downtime-limit"?: number;
  "max-postcopy-bandwidth"?: number;
}

/** query-block's `BlockInfo`, typed loosely: the disk-layer code reads only these members. */
export interface BlockInfo {
  device: string;
  qdev?: string;
  locked: boolean;
  removable: boolean;
  inserted?: {
    file: string;
    "node-name"?: string;
    drv: string;
    ro: boolean;
    backing_file?: string;
    backing_file_depth: number;
  };
}

export interface BlockdevSnapshotSyncArgs {
  device?: string;
  "node-name"?: string;
  "snapshot-file": string;
  "snapshot-node-name"?: string;
  format?: string;
  mode?: "existing" | "absolute-paths";
}

/** Command name → its arguments and its reply (`return`). */
export interface QmpCommands {
  qmp_capabilities: { args: { enable?: "oob"[] }; returns: Empty };
  "query-status": { args: Empty; returns: StatusInfo };
  "query-version": { args: Empty; returns: VersionInfo };
  stop: { args: Empty; returns: Empty };
  cont: { args: Empty; returns: Empty };
  quit: { args: Empty; returns: Empty };
  system_reset: { args: Empty; returns: Empty };
  system_powerdown: { args: Empty; returns: Empty };
  migrate: { args: { uri: string; detach?: boolean; resume?: boolean }; returns: Empty };
  "migrate-incoming": { args: { uri: string }; returns: Empty };
  "migrate-set-capabilities": {
    args: { capabilities: MigrationCapabilityStatus[] };
    returns: Empty;
  };
  "query-migrate-capabilities": { args: Empty; returns: MigrationCapabilityStatus[] };
  "migrate-set-parameters": { args: MigrateSetParameters; returns: Empty };
  "query-migrate-parameters": { args: Empty; returns: Required<MigrateSetParameters> };
  "query-migrate": { args: Empty; returns: MigrationInfo };
  /** Spelled with an underscore in QEMU's schema, unlike its neighbours. */
  migrate_cancel: { args: Empty; returns: Empty };
  /** Leaves the pause of capability pause-before-switchover; state must be "pre-switchover". */
  "migrate-continue": { args: { state: MigrationStatus }; returns: Empty };
  "migrate-start-postcopy": { args: Empty; returns: Empty };
  /** HMP passthrough, e.g. `info ramblock`; the reply is HMP's text output. */
  "human-monitor-command": {
    args: { "command-line": string; "cpu-index"?: number };
    returns: string;
  };
  "blockdev-snapshot-sync": { args: BlockdevSnapshotSyncArgs; returns: Empty };
  "query-block": { args: Empty; returns: BlockInfo[] };
}

export type QmpCommandName = keyof QmpCommands;
export type QmpArgs<C extends QmpCommandName> = QmpCommands[C]["args"];
export type QmpReturns<C extends QmpCommandName> = QmpCommands[C]["returns"];
