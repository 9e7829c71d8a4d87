import assert from "node:assert/strict";
import { test } from "node:test";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { BufferWarmer } from "./buffer-warmer.ts";

const BYTES = 8 * PAGE_SIZE_BYTES;
const tick = () => new Promise((resolve) => setImmediate(resolve));

test("buffers are touched a slice a turn, only while wanted, and the loop stays open between", async () => {
  const ready: ArrayBuffer[] = [];
  let want = 2;
  const warmer = new BufferWarmer(
    BYTES,
    () => ready.length < want,
    (b) => ready.push(b),
    3,
  );
  let turns = 0; // turns of the event loop seen by another callback meanwhile
  const count = (): void => {
    turns += 1;
    if (ready.length < want) setImmediate(count);
  };
  setImmediate(count);
  warmer.poke();
  warmer.poke(); // at most one slice is scheduled at a time
  while (ready.length < want) await tick();
  assert.equal(ready.length, 2);
  assert.ok(turns >= 5, `slices of 3 pages of 8 took turns of the loop: ${turns}`);
  for (const b of ready) assert.equal(b.byteLength, BYTES);
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(ready.length, 2, "nothing more while nothing is wanted");
  ready.pop();
  warmer.poke();
  while (ready.length < want) await tick();
  assert.equal(ready.length, 2, "a buffer taken is touched again");
  want = 3;
  warmer.poke();
  await tick();
  warmer.stop();
  for (let i = 0; i < 5; i++) await tick();
  warmer.poke();
  await tick();
  assert.equal(ready.length, 2, "nothing after stop");
});
