/**
 * FillOrder over a real (small) checkpoint: the reader's bulk scan gives the same order as
 * asking pageKind page by page (putFirst is tested with the page server, page-server.test.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CheckpointReader } from "../../checkpoint/index.ts";
import { tempStore, writeSmall } from "../../checkpoint/test-support.ts";
import { FillOrder } from "./fill-order.ts";
import { Placement } from "./placement.ts";

async function withSmall(run: (reader: CheckpointReader) => void): Promise<void> {
  const t = await tempStore();
  try {
    await writeSmall(t.store);
    const reader = await CheckpointReader.open(t.store, "small");
    try {
      run(reader);
    } finally {
      await reader.close();
    }
  } finally {
    await t.cleanup();
  }
}

function orderOf(order: FillOrder) {
  const chunks = Array.from({ length: order.chunkCount }, (_, c) => [...order.pagesOf(c)]);
  return { chunks, filled: [...order.filledZeroPages], stored: order.storedPages };
}

test("the reader's bulk scan and pageKind page by page give one fill order", async () => {
  await withSmall((reader) => {
    const placement = new Placement(reader.blocks.map((b) => b.pageCount));
    const bulk = new FillOrder(reader, placement);
    const byPage = new FillOrder(
      {
        blocks: reader.blocks,
        chunks: reader.chunks,
        pageKind: (b, p) => reader.pageKind(b, p),
      },
      placement,
    );
    assert.deepEqual(orderOf(bulk), orderOf(byPage));
    assert.deepEqual(orderOf(bulk).filled, [placement.index(0, 13)], "the 0xaa zero page");
    assert.ok(bulk.storedPages > 0);
  });
});
