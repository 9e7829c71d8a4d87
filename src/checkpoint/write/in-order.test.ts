import assert from "node:assert/strict";
import { test } from "node:test";
import { InOrder } from "./in-order.ts";

test("results that settle out of order are applied in the order their work started", async () => {
  const steps = new InOrder();
  const applied: number[] = [];
  const gates = [0, 1, 2].map(() => Promise.withResolvers<number>());
  for (const g of gates) steps.add(g.promise, (n) => void applied.push(n));
  assert.equal(steps.pending, 3);
  gates[2]?.resolve(2);
  gates[1]?.resolve(1);
  await Promise.all([gates[2]?.promise, gates[1]?.promise]); // the later two have settled
  assert.deepEqual(applied, [], "nothing before the first");
  const oldest = steps.oldest();
  gates[0]?.resolve(0);
  await oldest;
  assert.ok(steps.pending <= 2, "the oldest step is no longer pending once it settled");
  await steps.settled();
  // 0 can only be applied once its gate opened, after 1 and 2 had settled: this order is the
  // proof that the later results waited, however long the assertion above was given.
  assert.deepEqual(applied, [0, 1, 2]);
  assert.equal(steps.pending, 0);
  assert.equal(steps.failed, false);
});

test("after the first failure no later step is applied and nothing rejects", async () => {
  const steps = new InOrder();
  const applied: number[] = [];
  const boom = new Error("boom");
  steps.add(Promise.resolve(0), (n) => void applied.push(n));
  steps.add(Promise.reject(boom), (n: number) => void applied.push(n));
  steps.add(Promise.resolve(2), (n) => void applied.push(n));
  steps.add(Promise.resolve(3), () => {
    throw new Error("never applied");
  });
  await steps.settled(); // resolves: the failure is kept, not thrown
  assert.deepEqual(applied, [0]);
  assert.equal(steps.failed, true);
  assert.equal(steps.failure, boom);
});
