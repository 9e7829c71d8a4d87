/**
 * The repository explains itself: every document a comment or a doc cites is in the repository,
 * and every "X.md §N" cite names a section X.md has. Notes kept outside the repository (the
 * project's early shared notes) go stale or missing for a reader of a clone, so no file may
 * point at them.
 *
 * A cite is a path ending in `.md`, resolved from the repository root or from the citing file's
 * folder (Markdown links such as `../format.md`). A section is a heading `## 6.` / `### 6.4`;
 * cites of ranges (`§4–§6`) and lists (`§1.3, §1.6`) check every number written.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { test } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..");
const CHECKED = ["src", "guest", "test", "bench", "scripts", "docs", "README.md"];

/** Names of notes outside the repository; built from pieces so this file does not match itself. */
const OUTSIDE = [
  ["..", "/shared"].join(""),
  ["qemu-migration", ".md"].join(""),
  ["deps", ".md"].join(""),
];

const tracked = new Set(
  execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8" })
    .split("\0")
    .filter((p) => p !== ""),
);

/** This file, whose examples are cites by design. */
const SELF = "test/unit/self-contained-docs.test.ts";

const files = [...tracked]
  .filter((p) => p !== SELF && CHECKED.some((c) => p === c || p.startsWith(`${c}/`)))
  .map((path) => ({ path, bytes: readFileSync(join(ROOT, path)) }))
  .filter((f) => !f.bytes.includes(0)) // binary fixtures and golden packs
  .map((f) => ({ path: f.path, text: f.bytes.toString("utf8") }));

/**
 * A path ending in .md, not part of a URL nor a Markdown link's text (its target is read);
 * then the § numbers written after it, if any.
 */
const MD_PATH = String.raw`(?<![\w./:[-])((?:\.\.?/)*[\w-][\w./-]*\.md)\b`;
const CLOSERS = "[)\\]`'\"]*";
const SECTION_LIST = String.raw`((?:[\s*/]*§\d+(?:\.\d+)*(?:\s*(?:,|–|-|and|to)\s*)?)*)`;
const MD_CITE = new RegExp(MD_PATH + CLOSERS + SECTION_LIST, "g");
const SECTION = /§(\d+(?:\.\d+)*)/g;
const HEADING = /^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s/gm;

/** The tracked path a cite names, or undefined when it names nothing in the repository. */
function resolveCite(from: string, cite: string): string | undefined {
  const candidates = [normalize(join(dirname(from), cite))];
  if (!cite.startsWith(".")) candidates.unshift(normalize(cite));
  return candidates.find((c) => tracked.has(c));
}

function sectionsOf(path: string): Set<string> {
  const text = readFileSync(join(ROOT, path), "utf8");
  return new Set([...text.matchAll(HEADING)].map((m) => m[1] ?? ""));
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split("\n").length;
}

test("no file cites notes kept outside the repository", () => {
  for (const f of files) {
    for (const name of OUTSIDE) {
      const at = f.text.indexOf(name);
      assert.equal(at, -1, `${f.path}:${lineOf(f.text, at)} cites ${name}: cite a doc in docs/`);
    }
  }
});

test("every cited .md file exists in the repository", () => {
  assert.ok(files.length > 100, "git ls-files found the sources");
  for (const f of files) {
    for (const m of f.text.matchAll(MD_CITE)) {
      const cite = m[1] ?? "";
      assert.ok(
        resolveCite(f.path, cite) !== undefined,
        `${f.path}:${lineOf(f.text, m.index)} cites ${cite}, which is not in the repository`,
      );
    }
  }
});

test("every X.md §N cite names a section of X.md", () => {
  const sections = new Map<string, Set<string>>();
  let checked = 0;
  for (const f of files) {
    for (const m of f.text.matchAll(MD_CITE)) {
      const target = resolveCite(f.path, m[1] ?? "");
      if (target === undefined) continue; // the test above reports it
      for (const s of (m[2] ?? "").matchAll(SECTION)) {
        const known = sections.get(target) ?? sectionsOf(target);
        sections.set(target, known);
        checked++;
        assert.ok(
          known.has(s[1] ?? ""),
          `${f.path}:${lineOf(f.text, m.index)} cites ${target} §${s[1]}, which it lacks`,
        );
      }
    }
  }
  assert.ok(checked > 20, `only ${checked} section cites found: the pattern broke`);
});

test("the section check itself: headings and cites are read as intended", () => {
  const cites = [
    ..."see docs/migration-protocol.md §6.7 steps 1–7, `format.md` §3.1–§3.3".matchAll(MD_CITE),
  ];
  assert.deepEqual(
    cites.map((m) => [m[1], [...(m[2] ?? "").matchAll(SECTION)].map((s) => s[1])]),
    [
      ["docs/migration-protocol.md", ["6.7"]],
      ["format.md", ["3.1", "3.3"]],
    ],
  );
  assert.ok(sectionsOf("docs/migration-protocol.md").has("6.4"));
  assert.ok(sectionsOf("docs/format.md").has("1"));
});
