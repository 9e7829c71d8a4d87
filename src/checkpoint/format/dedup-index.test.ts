import assert from "node:assert/strict";
import crypto from "node:crypto";
import { test } from "node:test";
import { DedupIndex } from "./dedup-index.ts";

const digestOf = (n: number) => crypto.hash("sha256", `content ${n}`, "buffer");

test("finds every added digest through many growths, and only those", () => {
  const index = new DedupIndex();
  const n = 50_000;
  for (let i = 0; i < n; i++) {
    assert.equal(index.get(digestOf(i)), -1);
    index.addLast(i * 3);
  }
  assert.equal(index.size, n);
  for (let i = 0; i < n; i++) assert.equal(index.get(digestOf(i)), i * 3);
  for (let i = n; i < n + 1000; i++) assert.equal(index.get(digestOf(i)), -1);
});

test("digests that share their first 8 bytes are still told apart", () => {
  const index = new DedupIndex();
  const a = Buffer.alloc(32, 1);
  const b = Buffer.from(a);
  b.writeUInt8(2, 31); // same probe words, different last byte
  assert.equal(index.get(a), -1);
  index.addLast(10);
  assert.equal(index.get(b), -1);
  index.addLast(20);
  assert.deepEqual([index.get(a), index.get(b)], [10, 20]);
});
