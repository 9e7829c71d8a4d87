/** The command table: `snapwake <command> [args]`. */
import type { Context } from "../context.ts";
import { agentCommand } from "./agent.ts";
import { gcCommand, inspectCommand, lsCommand, rmCommand } from "./catalogue.ts";
import { restoreCommand, saveCommand, serveRestoreCommand } from "./checkpoint.ts";
import { profileCommand, relayoutCommand } from "./profile.ts";
import { streamInspectCommand } from "./stream.ts";
import { vmLsCommand, vmStartCommand, vmStopCommand } from "./vm.ts";

export interface Command {
  /** One line for `snapwake help`. */
  readonly usage: string;
  /** Internal commands snapwake runs itself; not listed by `snapwake help`. */
  readonly hidden?: boolean;
  run(ctx: Context, args: readonly string[]): Promise<void>;
}

export const COMMANDS: Readonly<Record<string, Command>> = {
  "vm start": vmStartCommand,
  "vm ls": vmLsCommand,
  "vm stop": vmStopCommand,
  save: saveCommand,
  restore: restoreCommand,
  profile: profileCommand,
  relayout: relayoutCommand,
  ls: lsCommand,
  inspect: inspectCommand,
  rm: rmCommand,
  gc: gcCommand,
  "stream inspect": streamInspectCommand,
  agent: agentCommand,
  "__serve-restore": serveRestoreCommand,
};

export function usage(): string {
  const lines = Object.entries(COMMANDS)
    .filter(([, c]) => c.hidden !== true)
    .map(([name, c]) => `  snapwake ${name} ${c.usage}`);
  return [
    "snapwake: checkpoint QEMU VMs into small verified files and restore them fast",
    "",
    "Commands:",
    ...lines,
    "",
    "Every command takes --json. The store is $SNAPWAKE_HOME (default ~/.local/share/snapwake).",
    "Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 bad checkpoint or stream, 5 QEMU failed.",
    "",
  ].join("\n");
}
