/**
 * The option tables and the parser that reads them: each command's arguments and options are
 * declared once (CommandSpec, in ./index.ts), node:util parseArgs parses by that declaration,
 * and help.ts prints it, so usage and parsing cannot disagree. Every command also takes
 * `--json` and `-h`/`--help`. Choices are checked here; the command code gets a Parsed.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { UsageError } from "../../errors.ts";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  /** The value's placeholder in usage ("N", "VM"); string options only. */
  readonly value?: string;
  /** The values a string option accepts: checked when parsing, listed in usage. */
  readonly choices?: readonly string[];
  /** One sentence for `snapwake help CMD`. */
  readonly help: string;
}

export interface ArgSpec {
  /** Its placeholder in usage, upper case ("CHECKPOINT"). */
  readonly name: string;
  readonly help: string;
  /** The values it accepts: checked when parsing, listed in usage. */
  readonly choices?: readonly string[];
}

/** What parsing and help need of a command. */
export interface ArgumentTable {
  readonly args: readonly ArgSpec[];
  readonly options: Readonly<Record<string, OptionSpec>>;
}

/** The options every command takes, besides its own. */
export const COMMON_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  json: { type: "boolean", help: "print the result (or the error) as JSON on stdout" },
  help: { type: "boolean", help: "show this help" },
};

export interface Parsed {
  /** The arguments as given (after the command name). */
  readonly raw: readonly string[];
  readonly positionals: readonly string[];
  /** A string option's value, or undefined. */
  str(name: string): string | undefined;
  /** A boolean option: true when given. */
  flag(name: string): boolean;
  /** The n-th positional (its presence was checked). */
  arg(n: number): string;
}

/** Whether the arguments ask for help (`-h`/`--help` before any `--`). */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}

/** Parses args strictly by the table; the positional count and every choice are checked. */
export function parse(args: readonly string[], table: ArgumentTable): Parsed {
  const options: NonNullable<ParseArgsConfig["options"]> = { json: { type: "boolean" } };
  for (const [name, o] of Object.entries(table.options)) options[name] = { type: o.type };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs goes on about `--` after an unknown option; the usage that follows says more.
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.replace(/\. To specify a positional argument.*$/s, ""));
  }
  const found = parsed.positionals;
  if (found.length !== table.args.length) {
    const want = table.args.length === 0 ? "no arguments" : table.args.map((a) => a.name).join(" ");
    const got = found.length === 0 ? "none" : found.join(" ");
    throw new UsageError(`expected ${want}, got ${got}`);
  }
  table.args.forEach((a, i) => {
    if (a.choices !== undefined) choice(found[i], a.choices, "", a.name);
  });
  const values = parsed.values as Record<string, string | boolean | undefined>;
  for (const [name, o] of Object.entries(table.options)) {
    const v = values[name];
    if (o.choices !== undefined && typeof v === "string") choice(v, o.choices, "", `--${name}`);
  }
  return {
    raw: args,
    positionals: found,
    str: (name) => {
      const v = values[name];
      return typeof v === "string" ? v : undefined;
    },
    flag: (name) => values[name] === true,
    arg: (n) => {
      const v = found[n];
      if (v === undefined) throw new UsageError(`missing argument ${table.args[n]?.name ?? n + 1}`);
      return v;
    },
  };
}

/** A choice (option or argument) as its type: `fallback` when absent, else one of `allowed`. */
export function choice<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
  name: string,
): T {
  if (value === undefined) return fallback;
  const found = allowed.find((a) => a === value);
  if (found === undefined)
    throw new UsageError(`${name} must be one of ${allowed.join(", ")}, got "${value}"`);
  return found;
}
