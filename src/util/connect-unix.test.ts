import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { connectUnix } from "./connect-unix.ts";
import { errorCode } from "./error-code.ts";

test("connectUnix resolves once connected and rejects when nothing listens", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "snapwake-util-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "s.sock");
  const missing = await connectUnix(path).catch((e: unknown) => e);
  assert.equal(errorCode(missing), "ENOENT");

  const server = createServer((s) => s.end("hi"));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const socket = await connectUnix(path);
  assert.equal(socket.listenerCount("error"), 0, "the connect listener is gone");
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), "hi");
});
