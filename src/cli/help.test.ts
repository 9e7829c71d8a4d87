import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../errors.ts";
import { COMMANDS, GROUPS, listed } from "./commands/index.ts";
import { parse, wantsHelp } from "./commands/parse.ts";
import { commandHelp, commandUsage, groupHelp, topHelp, wrap } from "./help.ts";

const WIDTHS = [40, 80, 132];

test("every command's help names each argument and option of the table that parses it", () => {
  for (const spec of COMMANDS.values()) {
    const text = commandHelp(spec, 80);
    for (const a of spec.args) assert.ok(text.includes(a.name), `${spec.name}: ${a.name}`);
    for (const name of [...Object.keys(spec.options), "json", "help"])
      assert.ok(text.includes(`--${name}`), `${spec.name} help lists --${name}`);
  }
});

test("help fits the width it is given", () => {
  const texts = (w: number) => [
    topHelp("0.0.0", w),
    ...Object.keys(GROUPS).map((g) => groupHelp(g, w)),
    ...[...COMMANDS.values()].map((s) => commandHelp(s, w)),
  ];
  for (const w of WIDTHS) {
    for (const text of texts(w)) {
      for (const line of text.split("\n")) {
        // Only a single word longer than the width may overflow (e.g. a long option label).
        if (line.length > w) assert.equal(line.trim().split(" ").length, 1, `${w}: "${line}"`);
      }
    }
  }
});

test("the command list has every listed command, and no hidden one", () => {
  const text = topHelp("1.2.3", 80);
  assert.match(text, /snapwake 1\.2\.3/);
  for (const spec of listed()) assert.ok(text.includes(`  ${spec.name}`), spec.name);
  assert.ok(!text.includes("__serve-restore"));
});

test("a group's help lists its commands only", () => {
  const text = groupHelp("vm", 80);
  for (const name of ["vm start", "vm ls", "vm stop"]) assert.ok(text.includes(name), name);
  assert.ok(!text.includes("restore"));
});

test("the usage after an error keeps the synopsis and the options, not the prose", () => {
  const restore = COMMANDS.get("restore");
  assert.ok(restore !== undefined);
  const text = commandUsage(restore, 80);
  assert.match(text, /^Usage: snapwake restore CHECKPOINT \[--name VM\]/);
  assert.ok(text.includes("--mode eager|mapped|lazy|partial|auto"));
  assert.ok(!text.includes(restore.details ?? "details"));
});

test("parsing follows the table: unknown options, counts and choices are usage errors", () => {
  const restore = COMMANDS.get("restore");
  assert.ok(restore !== undefined);
  const request = {
    args: [{ name: "REQUEST", help: "what", choices: ["ping", "stats"] }],
    options: {},
  };
  const p = parse(["web@1", "--mode", "lazy", "--json"], restore);
  assert.equal(p.arg(0), "web@1");
  assert.equal(p.str("mode"), "lazy");
  assert.equal(p.flag("wait"), false);
  assert.deepEqual(p.raw, ["web@1", "--mode", "lazy", "--json"]);
  assert.throws(() => parse(["web@1", "--bogus"], restore), /Unknown option '--bogus'$/);
  assert.throws(() => parse([], restore), /expected CHECKPOINT, got none/);
  assert.throws(() => parse(["a", "--mode", "fast"], restore), UsageError);
  assert.throws(() => parse(["pong"], request), /REQUEST must be one of ping/);
});

test("-h and --help ask for help unless they follow --", () => {
  assert.equal(wantsHelp(["x", "--help"]), true);
  assert.equal(wantsHelp(["-h"]), true);
  assert.equal(wantsHelp(["--", "--help"]), false);
  assert.equal(wantsHelp(["x"]), false);
});

test("wrap breaks between words only", () => {
  assert.deepEqual(wrap("aa bb cc", 5), ["aa bb", "cc"]);
  assert.deepEqual(wrap("averylongword b", 4), ["averylongword", "b"]);
  assert.deepEqual(wrap("", 10), []);
});
