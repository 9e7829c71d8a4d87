import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { test } from "node:test";
import { tempStore, writeSmall } from "../../checkpoint/test-support.ts";
import {
  refineWorkingSet,
  saveWorkingSet,
  workingSetFile,
  workingSetFromTrace,
} from "../../wss/index.ts";
import type { Context } from "../context.ts";
import { runInspect } from "./catalogue.ts";
import { COMMANDS } from "./index.ts";
import { parse } from "./parse.ts";

/** Runs `snapwake inspect NAME` against `home`; returns what it printed (text or JSON). */
async function inspect(home: string, name: string, json = false): Promise<string> {
  const spec = COMMANDS.get("inspect");
  assert.ok(spec !== undefined);
  let out = "";
  const ctx: Context = {
    home,
    json,
    signal: new AbortController().signal,
    qemu: () => undefined,
    ramDir: () => undefined,
    result(value, human) {
      out = json ? JSON.stringify(value) : human;
    },
    progress() {},
    done() {},
  };
  await runInspect(ctx, parse([name], spec));
  return out;
}

const pages = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => ({ block: 0, page: from + i, firstMs: i }));

test("inspect shows each working set's size and source, and the one auto picks", async () => {
  const t = await tempStore();
  try {
    await writeSmall(t.store, "demo@1");
    const none = await inspect(t.home, "demo@1");
    assert.match(none, /\nworking sets: none \(profile it, or save with accessed bits\)\n/);
    assert.match(none, /\nRAM image: none \(the first `restore --mode mapped` builds it\)$/);

    const trace = workingSetFromTrace([1, 2].map((page, tMs) => ({ block: 0, page, tMs })));
    const again = workingSetFromTrace([{ block: 0, page: 3, tMs: 0 }]);
    await saveWorkingSet(t.home, "demo@1", trace);
    await saveWorkingSet(t.home, "demo@1", refineWorkingSet(trace, again));
    await saveWorkingSet(t.home, "demo@1", { source: "write-set", pages: pages(4, 4) });
    // 12 of the 18 guest pages: most of memory, so auto would skip it even were it first.
    await saveWorkingSet(t.home, "demo@1", {
      source: "accessed-bits",
      pages: pages(0, 12),
      ofPages: 18,
    });
    const text = await inspect(t.home, "demo@1");
    assert.match(text, /^checkpoint demo@1 /, "the checkpoint's description comes first");
    const listed = text.slice(text.indexOf("\nworking sets:\n"), text.indexOf("\nRAM image:"));
    assert.equal(
      listed,
      [
        "",
        "working sets:",
        "  union                  3 pages  traced, refined over restores (auto picks this)",
        "  trace                  2 pages  traced by profile or save --continue",
        "  accessed-bits         12 pages  page-table Accessed bits at the save" +
          " (most of memory: auto skips it)",
        "  write-set              4 pages  pages the guest wrote during a live save",
      ].join("\n"),
    );

    // Without the traces, the broad accessed-bit estimate is passed over for the write set.
    for (const source of ["union", "trace"] as const) {
      await rm((await workingSetFile(t.home, "demo@1", source)) ?? "");
    }
    const rest = await inspect(t.home, "demo@1");
    assert.match(rest, /\n {2}accessed-bits +12 pages {2}[^\n]*Accessed bits[^\n(]*\(most of/);
    assert.match(
      rest,
      /\n {2}write-set +4 pages {2}pages the guest wrote[^\n]*\(auto picks this\)\n/,
    );
    assert.doesNotMatch(rest, /accessed-bits[^\n]*auto picks this/);

    const json = JSON.parse(await inspect(t.home, "demo@1", true));
    assert.deepEqual(json.workingSets, [
      { source: "accessed-bits", pages: 12, preferred: false, broad: true },
      { source: "write-set", pages: 4, preferred: true, broad: false },
    ]);
    assert.equal(json.ramImage, null, "no mapped restore built an image");
  } finally {
    await t.cleanup();
  }
});
