import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import { DecodeError } from "../errors.ts";
import { ByteSource } from "./byte-source.ts";

async function* chunked(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.byteLength; at += size) yield data.subarray(at, at + size);
}

const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff);

test("reads exact lengths across every chunk split, with absolute offsets", async () => {
  const lengths = [1, 8, 3, 100, 4, 255, 600, 29];
  for (const size of [1, 2, 3, 7, 64, 999, 1000, 4096]) {
    const src = new ByteSource(chunked(data, size));
    let at = 0;
    for (const n of lengths) {
      const r = src.take(n) ?? (await src.read(n, "a field"));
      assert.equal(r.offset, at, `offset at split ${size}`);
      assert.deepEqual(r.slice(n), data.subarray(at, at + n));
      at += n;
      assert.equal(src.offset, at);
    }
    assert.equal(await src.atEnd(), true);
  }
});

test("take is synchronous and returns null when more input is needed", async () => {
  const src = new ByteSource(chunked(data, 10));
  assert.equal(src.take(1), null); // nothing pulled yet
  const r = await src.read(4, "x");
  r.skip(4);
  assert.equal(src.buffered, 6);
  const fast = src.take(6);
  assert.notEqual(fast, null);
  fast?.skip(6);
  assert.equal(src.take(1), null);
});

test("an input that ends early throws DecodeError naming what and where", async () => {
  const src = new ByteSource(chunked(data.subarray(0, 10), 3));
  (await src.read(6, "header")).skip(6);
  await assert.rejects(src.read(8, "RAM record header"), (e: unknown) => {
    assert.ok(e instanceof DecodeError);
    assert.equal(e.offset, 6);
    assert.match(e.message, /ends inside RAM record header after 4 of 8 bytes/);
    return true;
  });
});

test("peek and nextChunk: the remainder streams chunk by chunk", async () => {
  const src = new ByteSource(chunked(data, 64));
  (await src.read(10, "x")).skip(10);
  assert.equal(await src.peekU8(), data[10]);
  const parts: Uint8Array[] = [];
  for (let part = await src.nextChunk(); part !== null; part = await src.nextChunk()) {
    parts.push(part);
  }
  assert.equal(parts.length, 16);
  assert.deepEqual(Buffer.concat(parts), Buffer.from(data.subarray(10)));
  assert.equal(src.offset, 1000);
  assert.equal(await src.peekU8(), null);
});

test("taking more than one consumes is caught as a programmer error", async () => {
  const src = new ByteSource(chunked(data, 100));
  const r = await src.read(4, "x");
  r.skip(2);
  assert.throws(() => src.take(1), { name: "AssertionError" });
});

test("close stops a Node stream early", async () => {
  const stream = Readable.from([Buffer.from(data)]);
  const src = new ByteSource(stream);
  (await src.read(1, "x")).skip(1);
  await src.close();
  assert.equal(stream.destroyed, true);
});

test("string chunks are rejected", async () => {
  async function* text(): AsyncGenerator<unknown> {
    yield "QEVM";
  }
  const src = new ByteSource(text() as AsyncIterable<Uint8Array>);
  await assert.rejects(src.read(1, "x"), TypeError);
});
