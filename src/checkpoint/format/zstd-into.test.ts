import assert from "node:assert/strict";
import { test } from "node:test";
import { DecodeError } from "../../errors.ts";
import { prng, randomBytes, textPage } from "../test-support.ts";
import { zstdCodec } from "./codec.ts";
import { viaCopy, zstdDecompressInto, zstdIntoIsDirect } from "./zstd-into.ts";

const zstd = zstdCodec(1);
const chunkOf = (seed: number, pages: number): Buffer =>
  Buffer.concat(
    Array.from({ length: pages }, (_, p) =>
      p % 3 === 0 ? randomBytes(prng(seed * 1000 + p), 4096) : textPage(seed * 1000 + p),
    ),
  );

test("this Node decompresses into the caller's buffer, not through a copy (ADR 0028)", () => {
  // If this fails after a Node upgrade, node:zlib's handle moved: restores still work through
  // zstdDecompressSync and a copy, but each chunk costs a fresh buffer's page faults again.
  assert.equal(zstdIntoIsDirect(), true);
});

test("one reused buffer takes frame after frame, each exactly", () => {
  const room = new Uint8Array(64 * 4096);
  for (const [seed, pages] of [
    [1, 64],
    [2, 1],
    [3, 17],
    [4, 64],
  ] as const) {
    const raw = chunkOf(seed, pages);
    const out = zstdDecompressInto(zstd.compress(raw), room.subarray(0, raw.byteLength));
    assert.equal(out.buffer, room.buffer, "the bytes are in the caller's buffer");
    assert.deepEqual(Buffer.from(out), raw);
  }
});

test("a frame that is not exactly the buffer's length fails, and never writes past it", () => {
  const raw = chunkOf(5, 4);
  const packed = zstd.compress(raw);
  const room = new Uint8Array(5 * 4096).fill(0xee);
  assert.throws(
    () => zstdDecompressInto(packed, room.subarray(0, 3 * 4096)),
    (e) => e instanceof DecodeError && /holds more than 12288 bytes/.test(e.message),
  );
  assert.ok(
    room.subarray(3 * 4096).every((b) => b === 0xee),
    "nothing past the buffer",
  );
  assert.throws(
    () => zstdDecompressInto(packed, room.subarray(0, 5 * 4096)),
    /holds 16384 bytes, expected 20480/,
  );
  // The decoder is usable after each failure.
  assert.deepEqual(Buffer.from(zstdDecompressInto(packed, new Uint8Array(4 * 4096))), raw);
});

test("damaged, cut and padded frames fail with DecodeError", () => {
  const raw = chunkOf(6, 8);
  const packed = zstd.compress(raw);
  const out = new Uint8Array(raw.byteLength);
  const flipped = Buffer.from(packed);
  for (let i = 4; i < 12; i++) flipped[i] = (flipped[i] ?? 0) ^ 0xff; // the frame header
  const cases: [string, Uint8Array, RegExp][] = [
    ["not zstd", Buffer.from("not a zstd frame at all"), /does not decompress/],
    ["damaged header", flipped, /DecodeError|does not decompress|holds/],
    ["cut short", packed.subarray(0, packed.byteLength - 100), /holds \d+ bytes|decompress/],
    ["bytes after it", Buffer.concat([packed, Buffer.from([1, 2, 3])]), /follow|decompress/],
  ];
  for (const [what, input, pattern] of cases) {
    assert.throws(
      () => zstdDecompressInto(input, out),
      (e) => e instanceof DecodeError && pattern.test(`${e.name} ${e.message}`),
      what,
    );
    assert.deepEqual(Buffer.from(zstdDecompressInto(packed, out)), raw, `usable after: ${what}`);
  }
});

test("without the handle, a copy gives the same bytes and the same failures", () => {
  const raw = chunkOf(7, 5);
  const packed = zstd.compress(raw);
  assert.deepEqual(Buffer.from(viaCopy(packed, new Uint8Array(raw.byteLength))), raw);
  assert.throws(() => viaCopy(packed, new Uint8Array(4 * 4096)), DecodeError);
  assert.throws(() => viaCopy(packed, new Uint8Array(6 * 4096)), /holds 20480 bytes/);
  assert.throws(() => viaCopy(Buffer.from("not zstd"), new Uint8Array(4096)), /decompress/);
});
