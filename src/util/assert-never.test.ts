import assert, { AssertionError } from "node:assert/strict";
import { test } from "node:test";
import { assertNever } from "./assert-never.ts";

test("assertNever names what was handled and the value, even a bigint", () => {
  const reach = (value: unknown) => () => assertNever(value as never, "chunk job");
  assert.throws(reach({ kind: "x" }), (e: unknown) => {
    assert.ok(e instanceof AssertionError);
    assert.match(e.message, /^Cannot handle chunk job \{"kind":"x"\}/);
    return true;
  });
  assert.throws(reach(5n), /Cannot handle chunk job 5/);
  assert.throws(reach(undefined), /Cannot handle chunk job undefined/);
});
