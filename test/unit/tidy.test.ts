/**
 * TigerBeetle-style tidy test: style rules that a reviewer would otherwise have to catch.
 * Long files, FIXMEs, console output outside the CLI, and imports that point up the layering.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { test } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..");
const FILE_LINES_MAX = 400;
const LINE_CHARS_MAX = 120;

/** Lower layers must not import higher ones. Key: folder; value: folders it may not import. */
const FORBIDDEN_IMPORTS: Record<string, readonly string[]> = {
  // The helpers every layer shares sit below all of them.
  "src/util": [
    "src/bytes",
    "src/store",
    "src/disk",
    "src/qemu",
    "src/checkpoint",
    "src/vm",
    "src/wss",
    "src/save",
    "src/restore",
    "src/cli",
  ],
  "src/store": [
    "src/qemu",
    "src/checkpoint",
    "src/vm",
    "src/wss",
    "src/save",
    "src/restore",
    "src/cli",
  ],
  "src/bytes": ["src/qemu", "src/checkpoint", "src/vm", "src/save", "src/restore", "src/cli"],
  "src/qemu": ["src/checkpoint", "src/vm", "src/save", "src/restore", "src/cli"],
  "src/checkpoint": ["src/qemu", "src/vm", "src/save", "src/restore", "src/cli"],
  "src/vm": ["src/checkpoint", "src/save", "src/restore", "src/cli"],
  "src/wss": ["src/qemu", "src/checkpoint", "src/vm", "src/save", "src/restore", "src/cli"],
  "src/save": ["src/restore", "src/cli"],
  "src/restore": ["src/cli"],
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (name.endsWith(".ts")) out.push(path);
  }
  return out;
}

const files = ["src", "guest", "test", "bench", "scripts"]
  .flatMap((d) => {
    try {
      return sourceFiles(join(ROOT, d));
    } catch {
      return []; // a folder that does not exist yet has nothing to check
    }
  })
  .map((path) => ({ path: relative(ROOT, path), text: readFileSync(path, "utf8") }));

test("source files stay short", () => {
  for (const f of files) {
    const lines = f.text.split("\n").length;
    assert.ok(
      lines <= FILE_LINES_MAX,
      `${f.path} has ${lines} lines (max ${FILE_LINES_MAX}): split it`,
    );
  }
});

test("lines stay short", () => {
  for (const f of files) {
    f.text.split("\n").forEach((line, i) => {
      assert.ok(line.length <= LINE_CHARS_MAX, `${f.path}:${i + 1} is ${line.length} characters`);
    });
  }
});

test("no unfinished-work markers", () => {
  // Built from pieces so this file does not match itself.
  const marker = new RegExp(`\\b(${["FIX", "ME"].join("")}|${["X", "XX"].join("")})\\b`);
  for (const f of files) {
    assert.ok(
      !marker.test(f.text),
      `${f.path} has an unfinished-work marker: fix it or file an issue`,
    );
  }
});

test("console output only in the CLI, bench and scripts", () => {
  for (const f of files) {
    if (!f.path.startsWith("src/") || f.path.startsWith("src/cli/")) continue;
    assert.ok(
      !/\bconsole\.(log|error|warn|info)\(/.test(f.text),
      `${f.path} writes to the console`,
    );
  }
});

/**
/**
 * Programs besides the CLI: the library's detached page server, which restoreDetached spawns
 * with its options as an argument (it reads argv only when run as a script).
 */
const ENTRY_POINTS = new Set(["src/restore/detached-server.ts"]);

/**
 * Reads of the environment outside the CLI that are not settings: each exact text, and why.
 * The machine-type cache keys a QEMU by the file exec would run, so it searches PATH as exec
 * does (a bare binary name, e.g. the system QEMU's).
 */
const ENV_READS_ALLOWED: Record<string, string> = {
  "src/vm/machine-types.ts": "process.env.PATH",
};

test("only the CLI reads process.env / argv or exits", () => {
  for (const f of files) {
    if (!f.path.startsWith("src/") || f.path.startsWith("src/cli/") || f.path.endsWith(".test.ts"))
      continue;
    if (ENTRY_POINTS.has(f.path)) continue;
    const allowed = ENV_READS_ALLOWED[f.path];
    const text = allowed === undefined ? f.text : f.text.replaceAll(allowed, "");
    assert.ok(!/process\.(env|argv|exit)\b/.test(text), `${f.path} uses process.env/argv/exit`);
  }
});

test("imports point down the layering", () => {
  for (const f of files) {
    const layer = Object.keys(FORBIDDEN_IMPORTS).find((l) => f.path.startsWith(`${l}/`));
    if (layer === undefined) continue;
    const forbidden = FORBIDDEN_IMPORTS[layer] ?? [];
    for (const m of f.text.matchAll(/from "(\.[^"]+)"/g)) {
      const target = relative(ROOT, join(ROOT, f.path, "..", m[1] ?? ""));
      const bad = forbidden.find((l) => target.startsWith(`${l}/`));
      assert.equal(bad, undefined, `${f.path} imports ${target}, which is above its layer`);
    }
  }
});

test("the library never imports the test guest (guest/ is not in the package)", () => {
  for (const f of files) {
    if (!f.path.startsWith("src/")) continue;
    for (const m of f.text.matchAll(/from "(\.[^"]+)"/g)) {
      const target = relative(ROOT, join(ROOT, f.path, "..", m[1] ?? ""));
      assert.ok(!target.startsWith("guest/"), `${f.path} imports ${target}, the test guest`);
    }
  }
});

/**
 * src/checkpoint's rooms, lowest first: a module imports its own room and those before it.
 * Tests may cross (a round trip writes, then reads). One exception, by type only: read/ names
 * store/'s CheckpointStore, which hands it the paths of shared packs and layers.
 */
const CHECKPOINT_ROOMS = ["format", "read", "store", "write"];
const TYPE_ONLY_UP: ReadonlySet<string> = new Set(["read->store"]);

test("checkpoint rooms import only the rooms below them", () => {
  const roomOf = (path: string) => /^src\/checkpoint\/([a-z]+)\//.exec(path)?.[1];
  for (const f of files) {
    const room = roomOf(f.path);
    if (room === undefined || f.path.endsWith(".test.ts") || f.path.includes("/testdata/"))
      continue;
    for (const m of f.text.matchAll(/^import (type )?[^;]*?from "(\.[^"]+)"/gms)) {
      const target = roomOf(relative(ROOT, join(ROOT, f.path, "..", m[2] ?? "")));
      if (target === undefined || target === room) continue;
      const up = CHECKPOINT_ROOMS.indexOf(target) > CHECKPOINT_ROOMS.indexOf(room);
      const allowed = !up || (m[1] !== undefined && TYPE_ONLY_UP.has(`${room}->${target}`));
      assert.ok(allowed, `${f.path} imports ${m[2]}, a room above ${room}/`);
    }
  }
});
