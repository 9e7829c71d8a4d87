/** Argument parsing shared by the commands: node:util parseArgs with usage errors. */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { UsageError } from "../../errors.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed {
  readonly positionals: readonly string[];
  /** A string option's value, or undefined. */
  str(name: string): string | undefined;
  /** A boolean option: true when given. */
  flag(name: string): boolean;
  /** The n-th positional (its presence was checked). */
  arg(n: number): string;
}

/** Parses args strictly; `--json` is always accepted. The positional count is checked. */
export function parse(
  args: readonly string[],
  options: Options,
  positionals: readonly string[],
): Parsed {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...options, json: { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const found = parsed.positionals;
  if (found.length !== positionals.length) {
    const want = positionals.map((p) => p.toUpperCase()).join(" ");
    throw new UsageError(`expected ${positionals.length} argument(s) ${want}, got ${found.length}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  return {
    positionals: found,
    str: (name) => {
      const v = values[name];
      return typeof v === "string" ? v : undefined;
    },
    flag: (name) => values[name] === true,
    arg: (n) => {
      const v = found[n];
      if (v === undefined) throw new UsageError(`missing argument ${positionals[n] ?? n + 1}`);
      return v;
    },
  };
}

/** Parses a choice option against its allowed values. */
export function choice<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  fallback: T,
  name: string,
): T {
  if (value === undefined) return fallback;
  const found = allowed.find((a) => a === value);
  if (found === undefined)
    throw new UsageError(`--${name} must be one of ${allowed.join(", ")}, got "${value}"`);
  return found;
}
