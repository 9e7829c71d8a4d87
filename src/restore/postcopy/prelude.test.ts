/**
 * boundedPrelude against a synthetic checkpoint: what a partial restore sends before the guest
 * runs and what it leaves to go first in the fill.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { PageLocation } from "../../checkpoint/index.ts";
import { UsageError } from "../../errors.ts";
import { PRELUDE_PAGES_MAX } from "../../limits.ts";
import { FillOrder } from "./fill-order.ts";
import { Placement } from "./placement.ts";
import { boundedPrelude } from "./prelude.ts";

const PAGES = 4 * PRELUDE_PAGES_MAX;
const PER_CHUNK = 64;

/** One block; every 10th page is zero, the others stored 64 to a chunk in page order. */
function fakeCheckpoint() {
  let next = 0;
  const kinds = Array.from({ length: PAGES }, (_, p): PageLocation => {
    if (p % 10 === 0) return { kind: "zero", fill: 0 };
    const at = next++;
    return { kind: "stored", chunk: Math.floor(at / PER_CHUNK), slot: at % PER_CHUNK };
  });
  const source = {
    blocks: [{ pageCount: PAGES }],
    chunks: { count: Math.ceil(next / PER_CHUNK) },
    pageKind: (_b: number, p: number): PageLocation => kinds[p] ?? { kind: "zero", fill: 0 },
  };
  const placement = new Placement([PAGES]);
  return { source, placement, order: new FillOrder(source, placement) };
}

/** The working set of every page from the top down, with first-access times when `timed`. */
function sweepDown(timed: boolean) {
  return Array.from({ length: PAGES }, (_, i) => ({
    block: 0,
    page: PAGES - 1 - i,
    firstMs: timed ? i + 1 : 0,
  }));
}

test("a timed working set is cut at the bound; the rest's chunks go first in the fill", () => {
  const { source, placement, order } = fakeCheckpoint();
  const { plan, fillFirst } = boundedPrelude(source, placement, order, sweepDown(true), "chunk");
  assert.equal(plan.pages.length, PRELUDE_PAGES_MAX);
  assert.equal(plan.pages[0], PAGES - 1, "the first page touched goes first");
  assert.equal(new Set(plan.pages).size, plan.pages.length, "each page once");
  const sent = new Set(plan.pages);
  const lastChunk = source.chunks.count - 1;
  assert.ok(!fillFirst.includes(lastChunk), "a chunk wholly in the prelude is not put first");
  for (const c of fillFirst) assert.ok([...order.pagesOf(c)].some((g) => !sent.has(g)));
  for (let c = 0; c < source.chunks.count; c++) {
    const unsent = [...order.pagesOf(c)].some((g) => !sent.has(g));
    assert.equal(fillFirst.includes(c), unsent, `chunk ${c} is put first iff it has pages left`);
  }
  assert.ok(fillFirst.indexOf(lastChunk - 200) < fillFirst.indexOf(0), "in the set's order");
});

test("a working set without times goes whole, each page once", () => {
  const { source, placement, order } = fakeCheckpoint();
  const { plan, fillFirst } = boundedPrelude(source, placement, order, sweepDown(false), "chunk");
  assert.equal(plan.pages.length, PAGES, "all of it: the DISCARDs need no page left out");
  assert.equal(new Set(plan.pages).size, plan.pages.length);
  assert.deepEqual(fillFirst, []);
});

test("a page brings its chunk's neighbours (unit chunk) or only itself (unit page)", () => {
  const { source, placement, order } = fakeCheckpoint();
  const ws = [{ block: 0, page: 5 }];
  const byChunk = boundedPrelude(source, placement, order, ws, "chunk").plan;
  assert.equal(byChunk.pages.length, PER_CHUNK);
  assert.deepEqual(byChunk.chunks, [0]);
  assert.deepEqual(boundedPrelude(source, placement, order, ws, "page").plan.pages, [5]);
});

test("a page outside the checkpoint is a UsageError", () => {
  const { source, placement, order } = fakeCheckpoint();
  for (const bad of [
    { block: 1, page: 0 },
    { block: 0, page: PAGES },
    { block: 0, page: -1 },
  ]) {
    assert.throws(() => boundedPrelude(source, placement, order, [bad], "chunk"), UsageError);
  }
});
