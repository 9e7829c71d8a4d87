import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { errorCode } from "./error-code.ts";

test("errorCode reads a system error's code and nothing else", async () => {
  const missing = await readFile("/nonexistent/snapwake").catch((e: unknown) => e);
  assert.equal(errorCode(missing), "ENOENT");
  for (const other of [new Error("x"), { code: 5 }, null, undefined, "ENOENT"]) {
    assert.equal(errorCode(other), undefined);
  }
});
