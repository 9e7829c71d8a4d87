import assert from "node:assert/strict";
import { test } from "node:test";
import { DecodeError } from "../errors.ts";
import { ByteReader, latin1Decode } from "./byte-reader.ts";

const bytes = Uint8Array.of(0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b);

test("reads big-endian integers and tracks the absolute offset", () => {
  const r = new ByteReader(bytes, 100);
  assert.equal(r.u8(), 0x01);
  assert.equal(r.u16(), 0x0203);
  assert.equal(r.offset, 103);
  assert.equal(r.u32(), 0x04050607);
  assert.equal(r.peekU8(), 0x08);
  assert.equal(r.remaining, 4);
  assert.deepEqual(r.slice(2), Uint8Array.of(0x08, 0x09));
  assert.equal(r.position, 9);
});

test("u64 returns a bigint and u64Number a number when it is safe", () => {
  const big = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe);
  assert.equal(new ByteReader(big).u64(), 0xffff_ffff_ffff_fffen);
  const safe = Uint8Array.of(0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x08);
  assert.equal(new ByteReader(safe).u64Number("x"), 0x1f_ffff_ffff_f008);
  assert.throws(() => new ByteReader(big, 7).u64Number("RAM total"), {
    name: "DecodeError",
    message: /RAM total: 0xfffffffffffffffe is too large \(at byte offset 7\)/,
  });
});

test("a read past the end throws DecodeError and does not move the cursor", () => {
  for (const read of [
    (r: ByteReader) => r.u16(),
    (r: ByteReader) => r.u32(),
    (r: ByteReader) => r.u64(),
    (r: ByteReader) => r.slice(2),
    (r: ByteReader) => r.skip(5),
  ]) {
    const r = new ByteReader(Uint8Array.of(1), 50);
    assert.throws(
      () => read(r),
      (e: unknown) => e instanceof DecodeError && e.offset === 50,
    );
    assert.equal(r.offset, 50);
  }
});

test("respects the view of a Buffer inside a pooled ArrayBuffer", () => {
  const pool = new Uint8Array(64).fill(0xee);
  pool.set([0x12, 0x34], 10);
  const r = new ByteReader(pool.subarray(10, 12));
  assert.equal(r.u16(), 0x1234);
  assert.throws(() => r.u8(), DecodeError);
});

test("latin1 is lossless for every byte value", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const text = new ByteReader(all).latin1(256);
  assert.equal(text.length, 256);
  assert.equal(latin1Decode(all), text);
  assert.equal(text.charCodeAt(255), 255);
});

test("one cursor, both byte orders: the same bytes read as each order says", () => {
  const word = Uint8Array.of(0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08);
  const cases = [
    { order: "big-endian", u16: 0x0102, u32: 0x01020304, u64: 0x0102030405060708n },
    { order: "little-endian", u16: 0x0201, u32: 0x04030201, u64: 0x0807060504030201n },
  ] as const;
  for (const c of cases) {
    const at = (n: number) => new ByteReader(word.subarray(0, n), 0, c.order);
    assert.equal(at(2).u16(), c.u16, c.order);
    assert.equal(at(4).u32(), c.u32, c.order);
    assert.equal(at(8).u64(), c.u64, c.order);
    assert.equal(at(1).u8(), 0x01, c.order);
    assert.equal(new ByteReader(word).order, "big-endian", "big-endian unless told");
  }
});

test("u64Number reads a safe value in either order and refuses 2^53 in either", () => {
  const be = Uint8Array.of(0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x08);
  const le = be.slice().reverse();
  assert.equal(new ByteReader(be, 0, "big-endian").u64Number("x"), 0x1f_ffff_ffff_f008);
  assert.equal(new ByteReader(le, 0, "little-endian").u64Number("x"), 0x1f_ffff_ffff_f008);
  const twoPow53 = Uint8Array.of(0, 0, 0, 0, 0, 0, 0x20, 0);
  assert.throws(() => new ByteReader(twoPow53, 4, "little-endian").u64Number("page count"), {
    name: "DecodeError",
    message: /page count: 0x0020000000000000 is too large \(at byte offset 4\)/,
  });
});

test("reserved bytes must be zero, and the error names where they start", () => {
  const r = new ByteReader(Uint8Array.of(0, 0, 0, 1), 10, "little-endian");
  r.reserved(2);
  assert.throws(() => r.reserved(2), {
    name: "DecodeError",
    message: /2 reserved bytes: not zero \(at byte offset 12\)/,
  });
});
