import assert from "node:assert/strict";
import { test } from "node:test";
import { BufferPool } from "./buffer-pool.ts";

test("a pooled buffer is handed out again only after its release, views included", () => {
  const pool = new BufferPool(64, 4);
  const a = pool.acquire();
  const b = pool.acquire();
  assert.notEqual(a.buffer, b.buffer);
  assert.equal(a.byteLength, 64);
  assert.ok(pool.holds(a.subarray(3, 9)));
  pool.release(a.subarray(0, 10)); // the writer gives back the view it wrote
  assert.equal(pool.holds(a), false);
  const c = pool.acquire();
  assert.equal(c.buffer, a.buffer, "reused after release");
  assert.notEqual(c.buffer, b.buffer, "b is still out");
  assert.deepEqual(pool.stats, { allocated: 2, reused: 1, outstanding: 2 });
});

test("releasing twice, or a buffer the pool did not hand out, is a bug", () => {
  const pool = new BufferPool(16, 4);
  const a = pool.acquire();
  pool.release(a);
  assert.throws(() => pool.release(a), /release a pooled buffer once/);
  assert.throws(() => pool.release(new Uint8Array(16)), /release a pooled buffer once/);
});

test("at most keepMax free buffers are kept", () => {
  const pool = new BufferPool(16, 1);
  const bufs = [pool.acquire(), pool.acquire(), pool.acquire()];
  for (const b of bufs) pool.release(b);
  pool.acquire();
  pool.acquire();
  assert.deepEqual(pool.stats, { allocated: 4, reused: 1, outstanding: 2 });
});
