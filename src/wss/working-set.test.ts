import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { InvalidCheckpointError, NotFoundError } from "../errors.ts";
import { WORKING_SET_FILE_BYTES_MAX } from "../limits.ts";
import { checkpointDir, manifestFile, workingSetsDir } from "../store/layout.ts";
import {
  listSources,
  loadWorkingSet,
  removeWorkingSets,
  saveWorkingSet,
  summarizeWorkingSets,
  WORKING_SET_PREFERENCE,
  workingSetFile,
} from "./store.ts";
import { refineWorkingSet, workingSetFromTrace, workingSetFromWrites } from "./working-set.ts";

/** A home whose store lists checkpoints as far as working sets care: by their manifests. */
async function tempHome() {
  const home = await mkdtemp(join(tmpdir(), "sw-wss-"));
  return {
    home,
    /** Lists `name` with manifest bytes `manifest` (a new checkpoint of that name if they differ). */
    async list(name: string, manifest = "manifest 1") {
      await mkdir(checkpointDir(home, name), { recursive: true });
      await writeFile(manifestFile(home, name), manifest);
    },
    unlist: (name: string) => rm(checkpointDir(home, name), { recursive: true }),
    cleanup: () => rm(home, { recursive: true, force: true }),
  };
}

test("a traced working set keeps each page once, at its first request, in order", () => {
  const ws = workingSetFromTrace([
    { block: 0, page: 5, tMs: 1 },
    { block: 0, page: 7, tMs: 2 },
    { block: 0, page: 5, tMs: 3 },
    { block: 1, page: 5, tMs: 4 },
  ]);
  assert.deepEqual(
    ws.pages.map((p) => [p.block, p.page, p.firstMs]),
    [
      [0, 5, 1],
      [0, 7, 2],
      [1, 5, 4],
    ],
  );
});

test("refinement is the union at earliest first access, bounded by size", () => {
  const a = workingSetFromTrace([
    { block: 0, page: 1, tMs: 10 },
    { block: 0, page: 2, tMs: 20 },
  ]);
  const b = workingSetFromTrace([
    { block: 0, page: 2, tMs: 5 },
    { block: 0, page: 3, tMs: 30 },
  ]);
  const u = refineWorkingSet(a, b);
  assert.equal(u.source, "union");
  assert.deepEqual(
    u.pages.map((p) => [p.page, p.firstMs]),
    [
      [2, 5],
      [1, 10],
      [3, 30],
    ],
  );
  assert.equal(refineWorkingSet(a, b, 2).pages.length, 2);
});

test("working sets round-trip through the store; the refined one is preferred", async () => {
  const t = await tempHome();
  const home = t.home;
  try {
    await assert.rejects(
      saveWorkingSet(home, "c@1", workingSetFromWrites([{ block: 0, page: 9 }])),
      NotFoundError,
      "a working set needs its checkpoint",
    );
    await t.list("c@1");
    assert.equal(await loadWorkingSet(home, "c@1"), null);
    await saveWorkingSet(home, "c@1", workingSetFromWrites([{ block: 0, page: 9 }]));
    await saveWorkingSet(home, "c@1", workingSetFromTrace([{ block: 1, page: 3, tMs: 7 }]));
    assert.deepEqual(await listSources(home, "c@1"), ["trace", "write-set"]);
    const ws = await loadWorkingSet(home, "c@1");
    assert.equal(ws?.source, "trace");
    assert.deepEqual(ws?.pages, [{ block: 1, page: 3, firstMs: 7 }]);
    assert.equal((await loadWorkingSet(home, "c@1", "write-set"))?.pages[0]?.page, 9);
    await removeWorkingSets(home, "c@1");
    assert.deepEqual(await listSources(home, "c@1"), []);
  } finally {
    await t.cleanup();
  }
});

test("an estimate holding most of guest memory is kept and named, but never picked by default", async () => {
  const t = await tempHome();
  try {
    await t.list("c@1");
    const pages = (n: number) =>
      Array.from({ length: n }, (_, page) => ({ block: 0, page, firstMs: 0 }));
    await saveWorkingSet(t.home, "c@1", {
      source: "accessed-bits",
      pages: pages(60),
      ofPages: 100,
    });
    assert.equal(await loadWorkingSet(t.home, "c@1"), null, "60 of 100 pages predict nothing");
    const named = await loadWorkingSet(t.home, "c@1", "accessed-bits");
    assert.equal(named?.pages.length, 60);
    assert.equal(named?.ofPages, 100, "ofPages round-trips");
    await saveWorkingSet(t.home, "c@1", workingSetFromWrites([{ block: 0, page: 9 }]));
    assert.equal((await loadWorkingSet(t.home, "c@1"))?.source, "write-set", "the next one is");
    assert.deepEqual(
      (await summarizeWorkingSets(t.home, "c@1")).map((w) => [w.source, w.preferred, w.broad]),
      [
        ["accessed-bits", false, true],
        ["write-set", true, false],
      ],
    );
    await saveWorkingSet(t.home, "c@1", {
      source: "accessed-bits",
      pages: pages(50),
      ofPages: 100,
    });
    assert.equal((await loadWorkingSet(t.home, "c@1"))?.source, "accessed-bits", "half is used");
  } finally {
    await t.cleanup();
  }
});

test("a checkpoint saved again under a removed one's name has none of its working sets", async () => {
  const t = await tempHome();
  try {
    await t.list("c@1");
    await saveWorkingSet(t.home, "c@1", workingSetFromWrites([{ block: 0, page: 9 }]));
    // Removed behind the store's back (a crash, a hand-made rm -r): the name's data stays.
    await t.unlist("c@1");
    assert.equal(await loadWorkingSet(t.home, "c@1"), null, "no checkpoint, no working set");
    await t.list("c@1", "manifest 2");
    assert.equal(await loadWorkingSet(t.home, "c@1"), null, "not inherited");
    assert.deepEqual(await listSources(t.home, "c@1"), []);
    await saveWorkingSet(t.home, "c@1", workingSetFromTrace([{ block: 1, page: 3, tMs: 7 }]));
    assert.deepEqual(await listSources(t.home, "c@1"), ["trace"]);
    assert.equal((await readdir(workingSetsDir(t.home, "c@1"))).length, 1, "the old one went");
  } finally {
    await t.cleanup();
  }
});

test("a damaged working-set file is a clear error, not a silent wrong prefetch", async () => {
  const t = await tempHome();
  const home = t.home;
  try {
    await t.list("c@1");
    const ws = workingSetFromWrites([1, 2, 3].map((page) => ({ block: 0, page })));
    const file = await saveWorkingSet(home, "c@1", ws);
    assert.match(file, /write-set\.ws$/);
    const good = await readFile(file);
    const header = good.subarray(0, good.indexOf(0x0a) + 1).toString();
    const records = good.subarray(header.length);
    const damaged: [string, Buffer][] = [
      ["no header line", Buffer.from("{")],
      ["not JSON", Buffer.from("{\n")],
      ["another format", Buffer.from('{"format":"other","version":2}\n')],
      ["a missing record", good.subarray(0, good.byteLength - 12)],
      ["a changed record", Buffer.concat([Buffer.from(header), flipped(records, 5)])],
      ["a wrong count", Buffer.from(header.replace('"pageCount":3', '"pageCount":2'))],
      ["another source", Buffer.from(header.replace('"write-set"', '"trace"'))],
    ];
    for (const [what, bytes] of damaged) {
      await writeFile(file, bytes);
      await assert.rejects(loadWorkingSet(home, "c@1"), InvalidCheckpointError, what);
    }
    // Past the size limit (sparse: its header is good, the rest holes): refused by its size.
    await writeFile(file, good);
    await truncate(file, WORKING_SET_FILE_BYTES_MAX + 1);
    await assert.rejects(loadWorkingSet(home, "c@1"), /is too large/);
  } finally {
    await t.cleanup();
  }
});

test("a version-1 (JSON) working-set file is still read, and checked", async () => {
  const t = await tempHome();
  try {
    await t.list("c@1");
    const v2 = await saveWorkingSet(t.home, "c@1", workingSetFromWrites([{ block: 0, page: 1 }]));
    await rm(v2);
    const v1 = v2.replace(/\.ws$/, ".json");
    const body = { format: "snapwake-working-set", version: 1, ofPages: 9, pages: [[0, 7, 3]] };
    await writeFile(v1, JSON.stringify(body));
    const ws = await loadWorkingSet(t.home, "c@1");
    assert.deepEqual(ws, {
      source: "write-set",
      pages: [{ block: 0, page: 7, firstMs: 3 }],
      ofPages: 9,
    });
    for (const text of ["{", '{"format":"snapwake-working-set","version":1,"pages":[[0,-1,0]]}']) {
      await writeFile(v1, text);
      await assert.rejects(loadWorkingSet(t.home, "c@1"), InvalidCheckpointError);
    }
    await saveWorkingSet(t.home, "c@1", workingSetFromWrites([{ block: 0, page: 2 }]));
    assert.deepEqual(await readdir(dirname(v1)), ["write-set.ws"], "the new file replaces it");
  } finally {
    await t.cleanup();
  }
});

test("a broad estimate is skipped from its header: its pages are never read", async () => {
  const t = await tempHome();
  try {
    await t.list("c@1");
    const pages = Array.from({ length: 80 }, (_, page) => ({ block: 0, page, firstMs: 0 }));
    const file = await saveWorkingSet(t.home, "c@1", {
      source: "accessed-bits",
      pages,
      ofPages: 100,
    });
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, bytes.indexOf(0x0a) + 1)); // the records are gone
    assert.equal(await loadWorkingSet(t.home, "c@1"), null, "broad: skipped by its header");
    assert.deepEqual(
      (await summarizeWorkingSets(t.home, "c@1")).map((w) => [w.source, w.pages, w.broad]),
      [["accessed-bits", 80, true]],
    );
    await assert.rejects(loadWorkingSet(t.home, "c@1", "accessed-bits"), /holds 0 bytes of pages/);
  } finally {
    await t.cleanup();
  }
});

/** The numbered list under "Which estimate auto picks" in docs/accessed-bits.md, in order. */
function documentedPreference(): string[] {
  const doc = readFileSync(join(import.meta.dirname, "..", "..", "docs/accessed-bits.md"), "utf8");
  const section = doc.split(/^## /m).find((s) => s.startsWith("Which estimate auto picks"));
  assert.ok(section !== undefined, 'docs/accessed-bits.md has "Which estimate auto picks"');
  return [...section.matchAll(/^\d+\. `([a-z-]+)`/gm)].map((m) => m[1] ?? "");
}

test("auto picks the working sets in the documented order: union, trace, accessed bits, writes", async () => {
  const documented = documentedPreference();
  assert.deepEqual(documented, ["union", "trace", "accessed-bits", "write-set"]);
  assert.deepEqual([...WORKING_SET_PREFERENCE], documented, "the doc and the code agree");
  const t = await tempHome();
  try {
    await t.list("c@1");
    const trace = workingSetFromTrace([{ block: 0, page: 1, tMs: 1 }]);
    const later = workingSetFromTrace([{ block: 0, page: 2, tMs: 2 }]);
    // Saved least preferred first, so the order on disk or of saving cannot be what decides.
    await saveWorkingSet(t.home, "c@1", workingSetFromWrites([{ block: 0, page: 9 }]));
    const bits = [3, 4, 5].map((page) => ({ block: 0, page, firstMs: 0 }));
    await saveWorkingSet(t.home, "c@1", { source: "accessed-bits", pages: bits, ofPages: 100 });
    await saveWorkingSet(t.home, "c@1", trace);
    await saveWorkingSet(t.home, "c@1", refineWorkingSet(trace, later));
    // Take away the one auto picks, each time: the next documented one is picked.
    for (const [i, source] of documented.entries()) {
      const ws = await loadWorkingSet(t.home, "c@1");
      assert.equal(ws?.source, source, `with ${documented.slice(i).join(", ")} stored`);
      const summary = await summarizeWorkingSets(t.home, "c@1");
      assert.deepEqual(
        summary.map((w) => [w.source, w.preferred]),
        documented.slice(i).map((s) => [s, s === source]),
        "inspect lists them in the same order and marks the same one",
      );
      const file = await workingSetFile(t.home, "c@1", ws?.source ?? "trace");
      assert.ok(file !== null);
      await rm(file);
    }
    assert.equal(await loadWorkingSet(t.home, "c@1"), null, "none left");
  } finally {
    await t.cleanup();
  }
});

function flipped(bytes: Buffer, at: number): Buffer {
  const out = Buffer.from(bytes);
  out[at] = (out[at] ?? 0) ^ 1;
  return out;
}
