import assert from "node:assert/strict";
import { test } from "node:test";
import { ByteReader } from "./byte-reader.ts";
import { ByteWriter, latin1Encode } from "./byte-writer.ts";

test("writes big-endian values that ByteReader reads back", () => {
  const w = new ByteWriter(2); // tiny, so it has to grow several times
  w.u8(0xab).u16(0x1234).u32(0xdeadbeef).u64(0x1_0000_0000_1008).u64(0xffff_ffff_ffff_ffffn);
  w.latin1("pc.ram").bytes(Uint8Array.of(9, 8, 7));
  const r = new ByteReader(w.view());
  assert.equal(r.u8(), 0xab);
  assert.equal(r.u16(), 0x1234);
  assert.equal(r.u32(), 0xdeadbeef);
  assert.equal(r.u64Number("x"), 0x1_0000_0000_1008);
  assert.equal(r.u64(), 0xffff_ffff_ffff_ffffn);
  assert.equal(r.latin1(6), "pc.ram");
  assert.deepEqual(r.slice(3), Uint8Array.of(9, 8, 7));
  assert.equal(r.remaining, 0);
});

test("take hands the bytes off and starts empty", () => {
  const w = new ByteWriter(8);
  w.u32(1);
  const first = w.take();
  w.u32(2);
  assert.deepEqual(first, Uint8Array.of(0, 0, 0, 1));
  assert.deepEqual(w.view(), Uint8Array.of(0, 0, 0, 2));
  assert.equal(w.length, 4);
});

test("out-of-range values are programmer errors", () => {
  const w = new ByteWriter();
  assert.throws(() => w.u8(256), { name: "AssertionError" });
  assert.throws(() => w.u16(-1), { name: "AssertionError" });
  assert.throws(() => w.u64(2 ** 53), { name: "AssertionError" });
  assert.throws(() => w.latin1("\u0100"), { name: "AssertionError" });
});

test("latin1Encode is the inverse of latin1 decoding", () => {
  const text = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
  assert.equal(new ByteReader(latin1Encode(text)).latin1(256), text);
});

test("the writer puts each order the reader reads, fixed-size records exactly", () => {
  for (const order of ["big-endian", "little-endian"] as const) {
    const bytes = new ByteWriter(4, order)
      .latin1("SWIX")
      .u16(0x0102)
      .u32(0x03040506)
      .reserved(2)
      .u64(0x1f_ffff_ffff_f008)
      .u64(0xfedc_ba98_7654_3210n)
      .takeExactly(28);
    const r = new ByteReader(bytes, 0, order);
    assert.equal(r.latin1(4), "SWIX");
    assert.equal(r.u16(), 0x0102, order);
    assert.equal(r.u32(), 0x03040506, order);
    r.reserved(2);
    assert.equal(r.u64Number("x"), 0x1f_ffff_ffff_f008, order);
    assert.equal(r.u64(), 0xfedc_ba98_7654_3210n, order);
  }
  const le = new ByteWriter(8, "little-endian").u32(1).take();
  assert.deepEqual(le, Uint8Array.of(1, 0, 0, 0));
  assert.throws(() => new ByteWriter(8).u16(1).takeExactly(4), { name: "AssertionError" });
});

test("reserved bytes are zero even in a reused buffer", () => {
  const dirty = new Uint8Array(8).fill(0xff);
  assert.deepEqual(new ByteWriter(dirty).reserved(3).take(), new Uint8Array(3));
});
