import assert from "node:assert/strict";
import { test } from "node:test";
import { ByteWriter } from "../../bytes/index.ts";
import { DecodeError } from "../../errors.ts";
import { RECV_BITMAP_ENDING, ReturnPathType } from "./constants.ts";
import {
  encodePong,
  encodeReqPages,
  encodeReqPagesId,
  encodeShut,
  type ReturnPathMessage,
  ReturnPathReader,
} from "./return-path.ts";
import { concat } from "./test-streams.ts";
import { chunked, fixture } from "./test-support.ts";

const captured = fixture("pc-postcopy.returnpath.bin");

async function readAll(input: AsyncIterable<Uint8Array>): Promise<ReturnPathMessage[]> {
  const messages: ReturnPathMessage[] = [];
  for await (const message of new ReturnPathReader(input)) messages.push(message);
  return messages;
}

const frame = (type: number, payload: Uint8Array): Uint8Array =>
  new ByteWriter(64).u16(type).u16(payload.byteLength).bytes(payload).take();

test("parses the captured return path of a real postcopy migration at every split", async () => {
  const expected: ReturnPathMessage[] = [
    { kind: "pong", value: 1 },
    { kind: "pong", value: 2 },
    { kind: "pong", value: 3 },
    {
      kind: "req-pages",
      blockName: "pc.ram",
      startBytes: 0x3f000,
      lengthBytes: 0x1000,
      named: true,
    },
    { kind: "pong", value: 4 },
    {
      kind: "req-pages",
      blockName: "0000:00:02.0/vga.vram",
      startBytes: 0,
      lengthBytes: 0x1000,
      named: true,
    },
    { kind: "shut", status: 0 },
  ];
  for (const size of [1, 3, 7, captured.byteLength]) {
    assert.deepEqual(await readAll(chunked(captured, size)), expected, `split ${size}`);
  }
});

test("encoders reproduce the captured messages", () => {
  assert.deepEqual(encodePong(1), captured.subarray(0, 8));
  assert.deepEqual(encodeReqPagesId("pc.ram", 0x3f000, 0x1000), captured.subarray(24, 47));
  assert.deepEqual(encodeShut(0), captured.subarray(captured.byteLength - 8));
});

test("REQ_PAGES uses the block of the last REQ_PAGES_ID", async () => {
  const bytes = concat(
    encodeReqPagesId("a", 0x1000, 0x1000),
    encodeReqPages(0x5000, 0x1000),
    encodeReqPagesId("b", 0, 0x200000),
    encodeReqPages(0x400000, 0x200000),
  );
  const requests = (await readAll(chunked(bytes, 5))).map((m) =>
    m.kind === "req-pages" ? `${m.blockName}@${m.startBytes.toString(16)}/${m.named}` : m.kind,
  );
  assert.deepEqual(requests, ["a@1000/true", "a@5000/false", "b@0/true", "b@400000/false"]);
});

test("RECV_BITMAP carries its bitmap and end marker outside the frame", async () => {
  const bitmap = Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 0x80);
  const name = new ByteWriter(8).u8(6).latin1("pc.ram").take();
  const tail = new ByteWriter(32).u64(8).bytes(bitmap).u64(RECV_BITMAP_ENDING).take();
  const ack = frame(ReturnPathType.resumeAck, Uint8Array.of(0, 0, 0, 1));
  const messages = await readAll(
    chunked(concat(frame(ReturnPathType.recvBitmap, name), tail, ack), 3),
  );
  assert.deepEqual(messages, [
    { kind: "recv-bitmap", blockName: "pc.ram", bitmap },
    { kind: "resume-ack", value: 1 },
  ]);
  const badEnd = new ByteWriter(32).u64(8).bytes(bitmap).u64(0n).take();
  await assert.rejects(
    readAll(chunked(concat(frame(ReturnPathType.recvBitmap, name), badEnd), 64)),
    (e: unknown) =>
      e instanceof DecodeError && e.offset === 11 + 16 && /end marker/.test(e.message),
  );
});

const rejections: readonly [string, Uint8Array, number, RegExp][] = [
  [
    "length over 512",
    frame(ReturnPathType.reqPagesId, new Uint8Array(513)),
    0,
    /length 513 \(max 512\)/,
  ],
  [
    "unknown type",
    concat(encodePong(1), frame(9, new Uint8Array(0))),
    8,
    /Unknown return-path message type 9/,
  ],
  ["SWITCHOVER_ACK (8.1+)", frame(ReturnPathType.switchoverAck, new Uint8Array(0)), 0, /type 7/],
  ["INVALID", frame(ReturnPathType.invalid, new Uint8Array(0)), 0, /type 0/],
  ["REQ_PAGES before REQ_PAGES_ID", encodeReqPages(0, 4096), 0, /before any REQ_PAGES_ID/],
  ["SHUT of 5 bytes", frame(ReturnPathType.shut, new Uint8Array(5)), 0, /SHUT has length 5, not 4/],
  [
    "REQ_PAGES_ID with trailing bytes",
    frame(ReturnPathType.reqPagesId, new Uint8Array(20)),
    0,
    /too many/,
  ],
  ["truncated message", encodeShut(0).subarray(0, 6), 4, /ends inside the payload .* after 2 of 4/],
  [
    "truncated header",
    concat(encodePong(2), Uint8Array.of(0)),
    8,
    /return-path message header after 1 of 4/,
  ],
  [
    "oversized bitmap",
    concat(
      frame(ReturnPathType.recvBitmap, Uint8Array.of(1, 0x61)),
      new ByteWriter(8).u64(2 ** 40).take(),
    ),
    6,
    /Received-bitmap size/,
  ],
];

for (const [name, bytes, at, message] of rejections) {
  test(`return path rejects: ${name}`, async () => {
    await assert.rejects(readAll(chunked(bytes, 2)), (e: unknown) => {
      assert.ok(e instanceof DecodeError, String(e));
      assert.match(e.message, message);
      assert.equal(e.offset, at);
      return true;
    });
  });
}
