#!/usr/bin/env node
import { STORE_THROTTLE_ENV, setStoreReadThrottle } from "../checkpoint/read-throttle.ts";
/**
 * The snapwake command line. The only place that reads argv and env, prints, and sets the
 * exit code. Each error class maps to an exit code and a hint about what to do next.
 */
import {
  DecodeError,
  InvalidCheckpointError,
  NotFoundError,
  QemuError,
  UnsupportedStreamError,
  UsageError,
} from "../errors.ts";
import { COMMANDS, usage } from "./commands/index.ts";
import { makeContext } from "./context.ts";

/** Exit codes, documented in the README. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  badData: 4,
  qemu: 5,
} as const;

async function main(argv: readonly string[]): Promise<number> {
  const [first, second] = argv;
  if (first === undefined || first === "help" || first === "--help" || first === "-h") {
    process.stdout.write(usage());
    return first === undefined ? ExitCode.usage : ExitCode.ok;
  }
  const key = second !== undefined && COMMANDS[`${first} ${second}`] ? `${first} ${second}` : first;
  const command = COMMANDS[key];
  if (command === undefined) {
    process.stderr.write(`snapwake: unknown command "${first}"\n\n${usage()}`);
    return ExitCode.usage;
  }
  const rest = argv.slice(key.split(" ").length);
  const json = rest.includes("--json");
  const ctx = makeContext(process.env, json);
  try {
    // Bench and test facility: an emulated slow store (docs/bench.md).
    setStoreReadThrottle(process.env[STORE_THROTTLE_ENV]);
    await command.run(ctx, rest);
    return ExitCode.ok;
  } catch (error) {
    ctx.done();
    return report(error, json);
  }
}

function report(error: unknown, json: boolean): number {
  const [code, hint] = classify(error);
  const message = error instanceof Error ? error.message : String(error);
  if (json) {
    const name = error instanceof Error ? error.name : "Error";
    process.stdout.write(`${JSON.stringify({ error: { name, message, hint } }, null, 2)}\n`);
  } else {
    process.stderr.write(`snapwake: ${message}\n${hint ? `hint: ${hint}\n` : ""}`);
  }
  if (code === ExitCode.failed && error instanceof Error && error.stack)
    process.stderr.write(`${error.stack}\n`);
  return code;
}

function classify(error: unknown): [number, string] {
  if (error instanceof UsageError) return [ExitCode.usage, "see `snapwake help`"];
  if (error instanceof NotFoundError)
    return [
      ExitCode.notFound,
      "check the name or path: `snapwake ls` lists checkpoints, `snapwake vm ls` VMs",
    ];
  if (error instanceof InvalidCheckpointError)
    return [
      ExitCode.badData,
      "the checkpoint cannot be trusted: restore another one, or save again",
    ];
  if (error instanceof UnsupportedStreamError || error instanceof DecodeError)
    return [
      ExitCode.badData,
      "the migration stream is damaged or uses a QEMU feature snapwake does not read",
    ];
  if (error instanceof QemuError)
    return [ExitCode.qemu, "the VM's qemu.log in its state dir has QEMU's own words"];
  return [ExitCode.failed, ""];
}

process.exitCode = await main(process.argv.slice(2));
