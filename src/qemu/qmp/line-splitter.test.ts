import assert from "node:assert/strict";
import { test } from "node:test";
import { QemuError } from "../../errors.ts";
import { LineSplitter } from "./line-splitter.ts";

const STREAM = Buffer.from('{"a":"é€"}\r\n\r\n{"return": {}, "id": 1}\r\n{"event":"STOP"}\n');
const LINES = ['{"a":"é€"}', '{"return": {}, "id": 1}', '{"event":"STOP"}'];

test("yields the same lines at every chunk split", () => {
  for (const size of [1, 2, 3, 5, 7, 64, STREAM.byteLength]) {
    const splitter = new LineSplitter(1024);
    const lines: string[] = [];
    for (let at = 0; at < STREAM.byteLength; at += size) {
      lines.push(...splitter.push(STREAM.subarray(at, at + size)));
    }
    assert.deepEqual(lines, LINES, `chunk size ${size}`);
  }
});

test("rejects a line over the limit before buffering it", () => {
  const splitter = new LineSplitter(8);
  assert.deepEqual(splitter.push(Buffer.from("12345678\n1234")), ["12345678"]);
  assert.throws(() => splitter.push(Buffer.from("56789")), QemuError);
});

test("rejects a line that is not UTF-8", () => {
  const splitter = new LineSplitter(8);
  assert.throws(() => splitter.push(Buffer.from([0xff, 0x0a])), /not valid UTF-8/);
});
