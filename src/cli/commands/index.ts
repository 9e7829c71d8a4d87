/**
 * The command table: `snapwake <command> [args]`. Each entry declares its arguments and
 * options (parse.ts parses by them, help.ts prints them) and loads its code on demand, so
 * starting the CLI costs only this table: this module imports no command code and nothing
 * heavier than parse.ts. `load` is a dynamic import of the module that runs the command.
 */
import { PROFILE_WINDOW_DEFAULT_MS } from "../../limits.ts";
import { RESTORE_MODES } from "../../restore/modes.ts";
import { AFTER_SAVE, DEFAULT_AFTER_SAVE } from "../../save/defaults.ts";
import type { Context } from "../context.ts";
import type { ArgumentTable, OptionSpec, Parsed } from "./parse.ts";

/** Runs a parsed command; errors are thrown to main.ts, which maps them to exit codes. */
export type Run = (ctx: Context, p: Parsed) => Promise<void>;

export interface CommandSpec extends ArgumentTable {
  /** "save", or "vm start" for a command of a group. */
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** More for `snapwake help CMD`, when the options do not say it all. */
  readonly details?: string;
  /** Internal commands snapwake runs itself; not listed. */
  readonly hidden?: boolean;
  /**
   * Set for commands that undo their work on SIGINT/SIGTERM (they get Context.signal): what
   * the one-line message says was left. Other commands end as the signal's default does.
   */
  readonly interrupted?: string;
  readonly load: () => Promise<Run>;
}

/** Command groups: `snapwake vm` lists the `vm ...` commands. */
export const GROUPS: Readonly<Record<string, string>> = {
  vm: "managed QEMU VMs: start one from a spec file, list them, stop one",
  stream: "QEMU migration stream files",
};

const CHECKPOINT_ARG = { name: "CHECKPOINT", help: "a checkpoint's name (`snapwake ls`)" };
const VM_NAME_OPTION: OptionSpec = {
  type: "string",
  value: "VM",
  help: "name of the new managed VM (default: the name of the VM that was saved)",
};
const SECONDS_OPTION: OptionSpec = {
  type: "string",
  value: "N",
  help:
    "bound the trace window to N seconds (default " +
    `${PROFILE_WINDOW_DEFAULT_MS / 1000}); the window closes earlier once no new pages come`,
};
const FIXED_OPTION: OptionSpec = {
  type: "boolean",
  help: "trace exactly N seconds instead of until the trace settles",
};

const RESTORE_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  name: VM_NAME_OPTION,
  mode: {
    type: "string",
    value: "MODE",
    choices: RESTORE_MODES,
    help:
      "eager: every page before the guest runs; mapped: guest RAM mapped copy-on-write from " +
      "a verified local image of the checkpoint, built on its first mapped restore and kept " +
      "(up to 32 GiB of images); lazy: the guest runs at once, its pages " +
      "follow on demand (QEMU postcopy); partial: the working set first, then as lazy; " +
      "auto (default): partial when the checkpoint has a working set, else lazy",
  },
  wait: {
    type: "boolean",
    help:
      "lazy and partial: serve the pages in the foreground until the fill is done and print " +
      "its report (default: a detached page server fills the guest after the command returns)",
  },
  "working-set": {
    type: "string",
    value: "KIND",
    help:
      "partial and auto: prefetch this kind of kept working set: union, trace, accessed-bits " +
      "or write-set (default: the first kept, in that order; `snapwake inspect` lists them)",
  },
  "ram-dir": {
    type: "string",
    value: "DIR",
    help:
      "eager: keep the guest's RAM in a file in DIR, a tmpfs mounted with huge pages " +
      "(mount -t tmpfs -o huge=within_size,size=SIZE none DIR), so that the guest touches it " +
      "in 2 MiB pages (default: $SNAPWAKE_RAM_DIR; unset: a memfd in 4 KiB pages)",
  },
  "keep-accessed-bits": {
    type: "boolean",
    help:
      "send the guest's page tables exactly as stored (default: their Accessed bits are " +
      "cleared, so the next save's accessed-bit working set covers what ran since)",
  },
};

const catalogueCmd = () => import("./catalogue.ts");
const vmCmd = () => import("./vm.ts");

const SPECS: readonly CommandSpec[] = [
  {
    name: "vm start",
    summary: "start a managed VM from a spec file",
    args: [{ name: "SPEC.json", help: "the VM spec (README); relative paths are to its folder" }],
    options: {
      name: { type: "string", value: "NAME", help: "the VM's name (default: the spec's name)" },
      paused: { type: "boolean", help: "start with the guest paused" },
    },
    load: () => vmCmd().then((m) => m.runVmStart),
  },
  {
    name: "vm ls",
    summary: "list managed VMs",
    args: [],
    options: {},
    load: () => vmCmd().then((m) => m.runVmLs),
  },
  {
    name: "vm stop",
    summary: "stop a managed VM and remove its state",
    args: [{ name: "NAME", help: "the VM's name (`snapwake vm ls`)" }],
    options: {},
    load: () => vmCmd().then((m) => m.runVmStop),
  },
  {
    name: "save",
    summary: "checkpoint a running managed VM",
    details:
      "Incremental by default: pages the VM's origin (the checkpoint it was restored from or " +
      "last saved to) holds are shared with it, not stored again. A guest that continues " +
      "runs again as soon as QEMU has written its state to a spool file in the store (when " +
      "its disk has room), while snapwake checks and packs it.",
    args: [{ name: "VM", help: "a managed VM's name (`snapwake vm ls`)" }],
    options: {
      name: {
        type: "string",
        value: "CHECKPOINT",
        help: "the checkpoint's name (default: VM@<UTC time>)",
      },
      parent: {
        type: "string",
        value: "CHECKPOINT",
        help: "share pages with this checkpoint instead of the VM's origin",
      },
      full: { type: "boolean", help: "store every page: no parent (excludes --parent)" },
      "share-store": {
        type: "boolean",
        help: "also share identical pages with every checkpoint in the store",
      },
      "stop-first": {
        type: "boolean",
        help:
          "pause the guest until QEMU has written its state (no live dirty tracking; with " +
          "--after continue the guest runs on while snapwake packs it)",
      },
      "no-spool": {
        type: "boolean",
        help:
          "keep a continuing guest paused until the checkpoint is listed, instead of letting " +
          "it run once QEMU has spooled its state: the save ends sooner when the guest would " +
          "compete with it for the CPU",
      },
      "no-accessed-bits": {
        type: "boolean",
        help:
          "skip the accessed-bit working set (a walk of the guest's page tables in the " +
          "checkpoint once the VM is back)",
      },
      after: {
        type: "string",
        value: "STATE",
        choices: AFTER_SAVE,
        help: `what the VM does once saved (default ${DEFAULT_AFTER_SAVE})`,
      },
      continue: {
        type: "boolean",
        help:
          "the VM goes on as a traced lazy restore of the checkpoint, demand-paged until no " +
          "new pages come; the pages it requested give the checkpoint's working set (excludes " +
          "--after; the command serves its pages until the fill is done)",
      },
      seconds: { ...SECONDS_OPTION, help: `with --continue: ${SECONDS_OPTION.help}` },
      fixed: { ...FIXED_OPTION, help: `with --continue: ${FIXED_OPTION.help}` },
    },
    interrupted: "the save was cancelled: nothing was saved, the VM is as it was",
    load: () => import("./save.ts").then((m) => m.runSave),
  },
  {
    name: "restore",
    summary: "restore a checkpoint into a new managed VM",
    details:
      "Without --wait, a lazy or partial restore returns once the guest runs; a detached page " +
      "server (logging next to the restore record, `snapwake inspect --restores`) fills it.",
    args: [CHECKPOINT_ARG],
    options: RESTORE_OPTIONS,
    interrupted: "the restore was cancelled: its QEMU is stopped, no VM was added",
    load: () => import("./restore.ts").then((m) => m.runRestore),
  },
  {
    name: "profile",
    summary: "learn a checkpoint's working set from a traced lazy restore of a clone",
    details:
      "The clone runs on pure demand paging until no new pages come (the trace has settled), " +
      "and the pages it requested become the checkpoint's working set; the checkpoint is " +
      "rewritten with it packed first, and the clone is stopped afterwards.",
    args: [CHECKPOINT_ARG],
    options: {
      seconds: SECONDS_OPTION,
      fixed: FIXED_OPTION,
      name: { ...VM_NAME_OPTION, help: "the clone's name" },
    },
    load: () => import("./profile.ts").then((m) => m.runProfile),
  },
  {
    name: "relayout",
    summary: "rewrite a checkpoint with its kept working set packed first",
    args: [CHECKPOINT_ARG],
    options: {},
    load: () => import("./profile.ts").then((m) => m.runRelayout),
  },
  {
    name: "ls",
    summary: "list complete, verified checkpoints",
    details: "SIZE is a checkpoint's own files; an incremental one shares its PARENT's packs.",
    args: [],
    options: {},
    load: () => catalogueCmd().then((m) => m.runLs),
  },
  {
    name: "inspect",
    summary: "describe a checkpoint",
    args: [CHECKPOINT_ARG],
    options: {
      verify: { type: "boolean", help: "read and check every chunk and the device state" },
      restores: {
        type: "boolean",
        help: "list the checkpoint's lazy and partial restores and their measures instead",
      },
    },
    load: () => catalogueCmd().then((m) => m.runInspect),
  },
  {
    name: "rm",
    summary: "delete a checkpoint with its working sets and restore records",
    args: [CHECKPOINT_ARG],
    options: {},
    load: () => catalogueCmd().then((m) => m.runRm),
  },
  {
    name: "gc",
    summary: "remove leftovers of interrupted saves",
    args: [],
    options: {},
    load: () => catalogueCmd().then((m) => m.runGc),
  },
  {
    name: "stream inspect",
    summary: "describe a QEMU migration stream file",
    args: [{ name: "FILE", help: 'a stream file (e.g. from QMP migrate "exec:cat > FILE")' }],
    options: {},
    load: () => import("./stream.ts").then((m) => m.runStreamInspect),
  },
  {
    name: "__serve-restore",
    summary: "(internal) the detached page server of `restore` without --wait",
    hidden: true,
    args: [CHECKPOINT_ARG],
    options: RESTORE_OPTIONS,
    interrupted: "the restore was cancelled: its QEMU is stopped",
    load: () => import("./serve-restore.ts").then((m) => m.runServeRestore),
  },
];

export const COMMANDS: ReadonlyMap<string, CommandSpec> = new Map(SPECS.map((s) => [s.name, s]));

/** The listed commands, in table order (of one group, when given). */
export function listed(group?: string): CommandSpec[] {
  return SPECS.filter(
    (s) => s.hidden !== true && (group === undefined || s.name.startsWith(`${group} `)),
  );
}
