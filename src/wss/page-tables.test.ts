import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import { AccessedBitsReset, loadPageTables, pageSha256, savePageTables } from "./page-tables.ts";

const IDENTITY = "a".repeat(64);

function table(entry: bigint): Uint8Array {
  const page = new Uint8Array(PAGE_SIZE_BYTES);
  new DataView(page.buffer).setBigUint64(0, entry, true);
  return page;
}

test("a page-table set is loaded only for the checkpoint identity it was saved for", async () => {
  const home = await mkdtemp(join(tmpdir(), "snapwake-pt-"));
  try {
    const t = table(0x7023n);
    await savePageTables(home, "c", {
      checkpointIndexSha256: IDENTITY,
      tables: [{ block: 0, page: 7, sha256: pageSha256(t) }],
    });
    const set = await loadPageTables(home, "c", IDENTITY);
    assert.deepEqual(set?.tables, [{ block: 0, page: 7, sha256: pageSha256(t) }]);
    assert.equal(await loadPageTables(home, "c", "b".repeat(64)), null, "another identity");
    assert.equal(await loadPageTables(home, "other", IDENTITY), null, "nothing saved");
    await writeFile(join(home, "wss", "c", "page-tables.json"), "{ damaged");
    assert.equal(await loadPageTables(home, "c", IDENTITY), null, "damaged: no edits");
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

test("the reset clears A bits only in listed pages whose bytes match the walk's", () => {
  const walked = table(0x7023n); // present, RW, accessed
  const reset = new AccessedBitsReset({
    checkpointIndexSha256: IDENTITY,
    tables: [{ block: 0, page: 7, sha256: pageSha256(walked) }],
  });
  const out = reset.apply(0, 7, walked);
  assert.equal(new DataView(out.buffer).getBigUint64(0, true), 0x7003n);
  assert.equal(reset.cleared, 1);
  const other = table(0x9023n);
  assert.equal(reset.apply(0, 8, other), other, "not a listed page: sent as it is");
  assert.equal(reset.apply(1, 7, walked), walked, "same page number, another block");
  assert.equal(reset.apply(0, 7, other), other, "listed, but not the bytes the walk read");
  assert.equal(reset.mismatched, 1);
  const none = new AccessedBitsReset(null);
  assert.equal(none.apply(0, 7, walked), walked);
});
