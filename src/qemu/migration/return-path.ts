/**
 * The return path (destination → source; docs/migration-protocol.md §4): `be16 type,
 * be16 len, payload[len]`, len ≤ 512 as QEMU's own source enforces. `ReturnPathReader`
 * decodes what a restoring QEMU sends us (page requests, PONG, SHUT, recovery messages); the
 * encoders build what snapwake sends QEMU as a migration destination (SHUT, PONG) and what a
 * fake destination sends in tests (page requests).
 *
 * Invariant: REQ_PAGES carries no block name; it is the block of the most recent
 * REQ_PAGES_ID on the same path (migration.c migrate_send_rp_req_pages).
 */
import { ByteReader, ByteSource, ByteWriter } from "../../bytes/index.ts";
import { DecodeError } from "../../errors.ts";
import { RECV_BITMAP_BYTES_MAX, RETURN_PATH_PAYLOAD_BYTES_MAX } from "../../limits.ts";
import { RECV_BITMAP_ENDING, ReturnPathType, type ReturnPathTypeCode } from "./constants.ts";

export type ReturnPathMessage =
  | { readonly kind: "shut"; readonly status: number }
  | { readonly kind: "pong"; readonly value: number }
  | {
      readonly kind: "req-pages";
      readonly blockName: string;
      readonly startBytes: number;
      readonly lengthBytes: number;
      /** True for REQ_PAGES_ID (the name was on the wire), false for REQ_PAGES. */
      readonly named: boolean;
    }
  | {
      readonly kind: "recv-bitmap";
      readonly blockName: string;
      /** 64-bit little-endian words; bit i set = target page i received. */
      readonly bitmap: Uint8Array;
    }
  | { readonly kind: "resume-ack"; readonly value: number };

const HEADER_BYTES = 4;
const REQ_PAGES_BYTES = 12;
const U32_MESSAGE_BYTES = 4;
const BITMAP_WORD_BYTES = 8;

export class ReturnPathReader implements AsyncIterable<ReturnPathMessage> {
  readonly #src: ByteSource;
  #lastBlock: string | null = null;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#src = new ByteSource(source);
  }

  /** Absolute offset of the next unread byte of the return path. */
  get offset(): number {
    return this.#src.offset;
  }

  /** The next message, or null when the path ends cleanly between messages. */
  async next(): Promise<ReturnPathMessage | null> {
    if (await this.#src.atEnd()) return null;
    const head = await this.#src.read(HEADER_BYTES, "a return-path message header");
    const at = head.offset;
    const type = head.u16();
    const length = head.u16();
    if (length > RETURN_PATH_PAYLOAD_BYTES_MAX) {
      throw new DecodeError(
        `Return-path message type ${type} has length ${length} (max ${RETURN_PATH_PAYLOAD_BYTES_MAX})`,
        at,
      );
    }
    const payload = await this.#src.read(length, `the payload of return-path message ${type}`);
    const body = new ByteReader(payload.slice(length), at + HEADER_BYTES);
    const message = this.#decode(type, body, at);
    if (body.remaining !== 0) {
      throw new DecodeError(`Return-path message type ${type} has ${length} bytes, too many`, at);
    }
    if (message.kind === "recv-bitmap") return { ...message, bitmap: await this.#readBitmap() };
    return message;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ReturnPathMessage, void, undefined> {
    for (let message = await this.next(); message !== null; message = await this.next()) {
      yield message;
    }
  }

  /** Stops reading early; safe to call twice. */
  async close(): Promise<void> {
    await this.#src.close();
  }

  #decode(type: number, body: ByteReader, at: number): ReturnPathMessage {
    const fixed = (n: number, name: string): ByteReader => {
      if (body.remaining !== n) {
        throw new DecodeError(`Return-path ${name} has length ${body.remaining}, not ${n}`, at);
      }
      return body;
    };
    switch (type) {
      case ReturnPathType.shut:
        return { kind: "shut", status: fixed(U32_MESSAGE_BYTES, "SHUT").u32() };
      case ReturnPathType.pong:
        return { kind: "pong", value: fixed(U32_MESSAGE_BYTES, "PONG").u32() };
      case ReturnPathType.resumeAck:
        return { kind: "resume-ack", value: fixed(U32_MESSAGE_BYTES, "RESUME_ACK").u32() };
      case ReturnPathType.reqPages: {
        const r = fixed(REQ_PAGES_BYTES, "REQ_PAGES");
        if (this.#lastBlock === null) {
          throw new DecodeError("Return-path REQ_PAGES before any REQ_PAGES_ID named a block", at);
        }
        const startBytes = r.u64Number("a requested page offset");
        return {
          kind: "req-pages",
          blockName: this.#lastBlock,
          startBytes,
          lengthBytes: r.u32(),
          named: false,
        };
      }
      case ReturnPathType.reqPagesId: {
        const startBytes = body.u64Number("a requested page offset");
        const lengthBytes = body.u32();
        const blockName = body.latin1(body.u8());
        this.#lastBlock = blockName;
        return { kind: "req-pages", blockName, startBytes, lengthBytes, named: true };
      }
      case ReturnPathType.recvBitmap:
        return {
          kind: "recv-bitmap",
          blockName: body.latin1(body.u8()),
          bitmap: new Uint8Array(0),
        };
      default:
        throw new DecodeError(`Unknown return-path message type ${type}`, at);
    }
  }

  /** The raw bitmap that follows a RECV_BITMAP message outside its frame (ram.c). */
  async #readBitmap(): Promise<Uint8Array> {
    const sizeField = await this.#src.read(8, "a received-bitmap size");
    const at = sizeField.offset;
    const size = sizeField.u64Number("a received-bitmap size");
    if (size > RECV_BITMAP_BYTES_MAX || size % BITMAP_WORD_BYTES !== 0) {
      throw new DecodeError(
        `Received-bitmap size ${size} is not a multiple of 8 up to ${RECV_BITMAP_BYTES_MAX}`,
        at,
      );
    }
    const bitmap = (await this.#src.read(size, "a received bitmap")).slice(size).slice();
    const ending = await this.#src.read(8, "a received-bitmap end marker");
    const endAt = ending.offset;
    if (ending.u64() !== RECV_BITMAP_ENDING) {
      throw new DecodeError("Received bitmap lacks its 0x0123456789abcdef end marker", endAt);
    }
    return bitmap;
  }
}

function frame(type: ReturnPathTypeCode, payload: ByteWriter): Uint8Array {
  const body = payload.view();
  return new ByteWriter(HEADER_BYTES + body.byteLength)
    .u16(type)
    .u16(body.byteLength)
    .bytes(body)
    .take();
}

/** SHUT(status): the destination's last message; 0 = the stream loaded. */
export function encodeShut(status: number): Uint8Array {
  return frame(ReturnPathType.shut, new ByteWriter(4).u32(status));
}

/** PONG(value): the answer to PING(value). */
export function encodePong(value: number): Uint8Array {
  return frame(ReturnPathType.pong, new ByteWriter(4).u32(value));
}

/** REQ_PAGES_ID: a page request that names its block. */
export function encodeReqPagesId(
  blockName: string,
  startBytes: number,
  lengthBytes: number,
): Uint8Array {
  const payload = new ByteWriter(32).u64(startBytes).u32(lengthBytes);
  payload.u8(blockName.length).latin1(blockName);
  return frame(ReturnPathType.reqPagesId, payload);
}

/** REQ_PAGES: a page request in the block of the previous REQ_PAGES_ID. */
export function encodeReqPages(startBytes: number, lengthBytes: number): Uint8Array {
  return frame(ReturnPathType.reqPages, new ByteWriter(12).u64(startBytes).u32(lengthBytes));
}
