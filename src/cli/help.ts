/**
 * Help texts, generated from the command table (commands/index.ts) and the option tables that
 * parse the arguments, wrapped to a width the caller gives (the terminal's, 80 off a TTY).
 * Pure functions of their arguments: main.ts decides where they go and with which exit code.
 */
import { type CommandSpec, GROUPS, listed } from "./commands/index.ts";
import { COMMON_OPTIONS, type OptionSpec } from "./commands/parse.ts";

/** Narrower terminals still get this many columns: help is unreadable below it anyway. */
const HELP_WIDTH_MIN = 40;
/** The left column (options, commands) is at most this wide; longer entries go on a line of
 * their own, their text under the column. */
const LEFT_COLUMN_MAX = 24;

const FOOTER =
  "Every command takes --json and --help. The store is $SNAPWAKE_HOME (default " +
  "~/.local/share/snapwake). Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 bad " +
  "checkpoint or stream, 5 QEMU failed, 6 store busy, 130/143 interrupted.";

/** The width to wrap to: the terminal's columns, else 80. */
export function helpWidth(out: { readonly isTTY?: boolean; readonly columns?: number }): number {
  const columns = out.isTTY === true && out.columns !== undefined ? out.columns : 80;
  return Math.max(HELP_WIDTH_MIN, columns);
}

/** `snapwake --help`: every listed command and group. */
export function topHelp(version: string, width: number): string {
  return [
    ...wrap(
      `snapwake ${version}: checkpoint QEMU VMs into small verified files and restore them fast`,
      width,
    ),
    "",
    ...hanging("Usage: snapwake", ["COMMAND", "[ARGUMENTS]", "[OPTIONS]"], width),
    ...hanging("       snapwake", "help [COMMAND] | COMMAND --help | --version".split(" "), width),
    "",
    "Commands:",
    ...columns(listed().map(commandRow), width),
    "",
    ...wrap(FOOTER, width),
    "",
  ].join("\n");
}

/** `snapwake vm`: the commands of one group. */
export function groupHelp(group: string, width: number): string {
  return [
    ...hanging(`Usage: snapwake ${group}`, ["COMMAND", "[ARGUMENTS]", "[OPTIONS]"], width),
    "",
    ...wrap(capitalized(GROUPS[group] ?? group), width),
    "",
    "Commands:",
    ...columns(listed(group).map(commandRow), width),
    "",
    ...wrap(`\`snapwake help ${group} COMMAND\` describes one.`, width),
    "",
  ].join("\n");
}

/** `snapwake help CMD`: the synopsis, what it does, its arguments and options. */
export function commandHelp(spec: CommandSpec, width: number): string {
  const about = [spec.summary, spec.details ?? ""].map(capitalized).join(" ").trim();
  return [
    usageBlock(spec, width),
    ...wrap(about, width),
    "",
    ...argumentsAndOptions(spec, width),
  ].join("\n");
}

/** After a usage error: the synopsis and the options, without the prose. */
export function commandUsage(spec: CommandSpec, width: number): string {
  return [usageBlock(spec, width), ...argumentsAndOptions(spec, width)].join("\n");
}

function usageBlock(spec: CommandSpec, width: number): string {
  const head = `Usage: snapwake ${spec.name}`;
  const room = width - hangingIndent(head, width);
  const synopsis = (name: string, o: OptionSpec): string => {
    const full = `[${optionLabel(name, o)}]`; // choices too long for a line: the Options list them
    return full.length <= room || o.type === "boolean" ? full : `[--${name} ${o.value ?? "VALUE"}]`;
  };
  const tokens = [
    ...spec.args.map((a) => a.name),
    ...Object.entries(spec.options).map(([name, o]) => synopsis(name, o)),
    "[--json]",
  ];
  return `${hanging(head, tokens, width).join("\n")}\n`;
}

function argumentsAndOptions(spec: CommandSpec, width: number): string[] {
  const args = spec.args.map((a): [string, string] => [
    a.name,
    a.choices === undefined ? a.help : `${a.help}: ${a.choices.join(", ")}`,
  ]);
  const options = Object.entries({ ...spec.options, ...COMMON_OPTIONS }).map(
    ([name, o]): [string, string] => [
      name === "help" ? "-h, --help" : optionLabel(name, o),
      o.help,
    ],
  );
  const left = leftColumn([...args, ...options]);
  return [
    ...(args.length === 0 ? [] : ["Arguments:", ...columns(args, width, left), ""]),
    "Options:",
    ...columns(options, width, left),
    "",
  ];
}

function commandRow(spec: CommandSpec): [string, string] {
  return [[spec.name, ...spec.args.map((a) => a.name)].join(" "), spec.summary];
}

/** `--mode eager|lazy|partial|auto`, `--name VM`, `--wait`. */
function optionLabel(name: string, o: OptionSpec): string {
  if (o.type === "boolean") return `--${name}`;
  return `--${name} ${o.choices?.join("|") ?? o.value ?? "VALUE"}`;
}

function capitalized(text: string): string {
  const s = text.length === 0 ? text : `${text.charAt(0).toUpperCase()}${text.slice(1)}`;
  return s.length === 0 || s.endsWith(".") ? s : `${s}.`;
}

type Row = readonly [string, string];

/** The left column's width: its longest entry, unless longer than LEFT_COLUMN_MAX. */
function leftColumn(rows: readonly Row[]): number {
  return Math.max(0, ...rows.map(([left]) => left.length).filter((n) => n <= LEFT_COLUMN_MAX));
}

/** Two columns: the left one `left` wide (a longer entry on a line of its own), the right one
 * wrapped. */
function columns(rows: readonly Row[], width: number, left = leftColumn(rows)): string[] {
  const indent = 2 + left + 2;
  const out: string[] = [];
  for (const [name, text] of rows) {
    const body = wrap(text, width - indent);
    if (name.length > left) {
      out.push(`  ${name}`);
      for (const line of body) out.push(`${" ".repeat(indent)}${line}`);
      continue;
    }
    const [first = "", ...rest] = body;
    out.push(`  ${name.padEnd(left)}  ${first}`);
    for (const line of rest) out.push(`${" ".repeat(indent)}${line}`);
  }
  return out;
}

/** Where hanging() starts its continuation lines. */
function hangingIndent(head: string, width: number): number {
  return head.length + 1 < width / 2 ? head.length + 1 : 4;
}

/** `head` then tokens, wrapped with the continuation lines under the first token. */
function hanging(head: string, tokens: readonly string[], width: number): string[] {
  const indent = hangingIndent(head, width);
  const lines: string[] = [];
  let line = head;
  for (const t of tokens) {
    if (line.length + 1 + t.length > width && line.trim().length > 0) {
      lines.push(line);
      line = `${" ".repeat(indent)}${t}`;
    } else line = `${line} ${t}`;
  }
  lines.push(line);
  return lines;
}

/** Greedy word wrap; a word longer than the width gets a line of its own. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line.length === 0 ? word : `${line} ${word}`;
  }
  if (line.length > 0) lines.push(line);
  return lines;
}
