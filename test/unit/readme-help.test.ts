/**
 * The README shows the help of some commands as a terminal would: a code block whose first
 * line is `$ snapwake ...` asking for help, then the output. Each must be exactly what the CLI
 * prints (80 columns, as in a pipe), so the README cannot drift from the option tables.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..");
const MAIN = join(ROOT, "src", "cli", "main.ts");

interface Shown {
  readonly args: string[];
  readonly output: string;
}

/** The README's code blocks that show a help invocation and its output. */
function shownHelp(markdown: string): Shown[] {
  const blocks = [...markdown.matchAll(/^```\n\$ snapwake ([^\n]*)\n([\s\S]*?)^```$/gm)];
  return blocks
    .map((m) => ({ args: (m[1] ?? "").split(" "), output: m[2] ?? "" }))
    .filter((b) => b.args.some((a) => a === "help" || a === "--help" || a === "-h"));
}

test("each help block in the README is what the CLI prints", () => {
  const shown = shownHelp(readFileSync(join(ROOT, "README.md"), "utf8"));
  assert.ok(shown.length >= 2, "the README shows `snapwake --help` and a command's help");
  for (const { args, output } of shown) {
    const printed = execFileSync(process.execPath, [MAIN, ...args], {
      encoding: "utf8",
      env: { ...process.env, COLUMNS: "80" },
    });
    assert.equal(output, printed, `README's \`snapwake ${args.join(" ")}\``);
  }
});
