#!/usr/bin/env node
/**
 * The snapwake command line. The only place that reads argv and env, prints, and sets the
 * exit code. Each error class maps to an exit code and a hint about what to do next.
 *
 * Start-up cost is part of every command's latency (a restore's time to a running guest
 * starts at exec), so this module and the command table import nothing heavy: a command's
 * code is loaded only once its arguments have parsed, help texts only when asked for.
 */
import { readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { STORE_THROTTLE_ENV, setStoreReadThrottle } from "../checkpoint/read/read-throttle.ts";
import {
  DecodeError,
  InterruptedError,
  InvalidCheckpointError,
  NotFoundError,
  QemuError,
  StoreBusyError,
  UnsupportedStreamError,
  UsageError,
} from "../errors.ts";
import { COMMANDS, type CommandSpec, GROUPS } from "./commands/index.ts";
import { type Parsed, parse, wantsHelp } from "./commands/parse.ts";
import { makeContext } from "./context.ts";

/** Exit codes, documented in the README. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  badData: 4,
  qemu: 5,
  busy: 6,
  // A command cancelled by SIGINT or SIGTERM exits 128 + the signal's number: 130 or 143.
} as const;

const help = () => import("./help.ts");

type Found =
  | { readonly kind: "command"; readonly spec: CommandSpec; readonly rest: readonly string[] }
  | { readonly kind: "group"; readonly group: string; readonly rest: readonly string[] }
  | { readonly kind: "unknown"; readonly name: string };

/** The command (longest name first), group or unknown word that argv starts with. */
function resolve(argv: readonly string[]): Found {
  const [first = "", second] = argv;
  const pair = COMMANDS.get(`${first} ${second}`);
  if (pair !== undefined) return { kind: "command", spec: pair, rest: argv.slice(2) };
  const single = COMMANDS.get(first);
  if (single !== undefined) return { kind: "command", spec: single, rest: argv.slice(1) };
  if (GROUPS[first] !== undefined) return { kind: "group", group: first, rest: argv.slice(1) };
  return { kind: "unknown", name: first };
}

async function main(argv: readonly string[]): Promise<number> {
  const [first] = argv;
  if (first === "--version") return out(`${version()}\n`, ExitCode.ok);
  if (first === undefined || first === "--help" || first === "-h") {
    const h = await help();
    const text = h.topHelp(version(), h.helpWidth(process.stdout));
    return out(text, first === undefined ? ExitCode.usage : ExitCode.ok);
  }
  if (first === "help") return showHelp(argv.slice(1));
  const found = resolve(argv);
  if (found.kind === "unknown") return unknown(found.name);
  if (found.kind === "group") {
    const [sub] = found.rest;
    if (sub !== undefined && !wantsHelp(found.rest)) return unknown(`${found.group} ${sub}`);
    const h = await help();
    const text = h.groupHelp(found.group, h.helpWidth(process.stdout));
    return out(text, sub === undefined ? ExitCode.usage : ExitCode.ok);
  }
  const { spec, rest } = found;
  if (wantsHelp(rest)) {
    const h = await help();
    return out(h.commandHelp(spec, h.helpWidth(process.stdout)), ExitCode.ok);
  }
  const json = rest.includes("--json");
  let parsed: Parsed;
  try {
    parsed = parse(rest, spec);
  } catch (error) {
    return usageFailure(spec, error, json);
  }
  const interrupt = spec.interrupted === undefined ? null : catchSignals();
  const ctx = makeContext(process.env, json, interrupt?.signal);
  try {
    setStoreReadThrottle(process.env[STORE_THROTTLE_ENV]);
    const run = await spec.load();
    await run(ctx, parsed);
    // Done, even if a signal came too late to cancel it: the work is there, so it is a success.
    return ExitCode.ok;
  } catch (error) {
    ctx.done();
    const by = interrupt?.signal.aborted ? interrupt.signal.reason : null;
    if (by instanceof InterruptedError && by.signal !== null)
      return interrupted(by.signal, spec, json);
    return report(error, json, spec.name);
  }
}

/**
 * SIGINT and SIGTERM abort the returned controller with an InterruptedError: the command
 * undoes its work and main exits 128 + the signal's number. A second signal exits at once.
 */
function catchSignals(): AbortController {
  const controller = new AbortController();
  const on = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      process.stderr.write(`snapwake: ${signal} again: exiting without cleaning up\n`);
      process.exit(signalExitCode(signal));
    }
    controller.abort(new InterruptedError(`Interrupted by ${signal}`, signal));
  };
  process.on("SIGINT", on);
  process.on("SIGTERM", on);
  return controller;
}

/** The one line of an interrupted command; the shell's convention for the exit code. */
function interrupted(signal: NodeJS.Signals, spec: CommandSpec, json: boolean): number {
  const message = `interrupted by ${signal}: ${spec.interrupted ?? "stopped"}`;
  if (json) {
    const error = { name: "InterruptedError", message, signal };
    process.stdout.write(`${JSON.stringify({ error }, null, 2)}\n`);
  } else process.stderr.write(`snapwake ${spec.name}: ${message}\n`);
  return signalExitCode(signal);
}

function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 0);
}

/** `snapwake help [GROUP | COMMAND]`. */
async function showHelp(words: readonly string[]): Promise<number> {
  const h = await help();
  if (words.length === 0)
    return out(h.topHelp(version(), h.helpWidth(process.stdout)), ExitCode.ok);
  const found = resolve(words);
  if (found.kind === "command" && found.rest.length === 0)
    return out(h.commandHelp(found.spec, h.helpWidth(process.stdout)), ExitCode.ok);
  if (found.kind === "group" && found.rest.length === 0)
    return out(h.groupHelp(found.group, h.helpWidth(process.stdout)), ExitCode.ok);
  return unknown(words.join(" "));
}

async function unknown(name: string): Promise<number> {
  const h = await help();
  const group = name.split(" ")[0] ?? "";
  const list =
    GROUPS[group] !== undefined && name !== group
      ? h.groupHelp(group, h.helpWidth(process.stderr))
      : h.topHelp(version(), h.helpWidth(process.stderr));
  process.stderr.write(`snapwake: unknown command "${name}"\n\n${list}`);
  return ExitCode.usage;
}

/** Arguments that do not parse: the error, then that command's usage. */
async function usageFailure(spec: CommandSpec, error: unknown, json: boolean): Promise<number> {
  if (json) return report(error, json, spec.name);
  const message = error instanceof Error ? error.message : String(error);
  const h = await help();
  const usage = h.commandUsage(spec, h.helpWidth(process.stderr));
  process.stderr.write(`snapwake ${spec.name}: ${message}\n\n${usage}`);
  return ExitCode.usage;
}

function out(text: string, code: number): number {
  process.stdout.write(text);
  return code;
}

/** The package's version, from the package.json two folders up (of src/ or dist/). */
function version(): string {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
  const v: unknown = JSON.parse(text).version;
  return typeof v === "string" ? v : "unknown";
}

function report(error: unknown, json: boolean, command: string): number {
  const [code, hint] = classify(error, command);
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

function classify(error: unknown, command: string): [number, string] {
  if (error instanceof UsageError) return [ExitCode.usage, `see \`snapwake help ${command}\``];
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
  if (error instanceof StoreBusyError)
    return [ExitCode.busy, "another snapwake command uses the store; run this again after it"];
  if (error instanceof QemuError)
    return [ExitCode.qemu, "the VM's qemu.log in its state dir has QEMU's own words"];
  return [ExitCode.failed, ""];
}

process.exitCode = await main(process.argv.slice(2));
