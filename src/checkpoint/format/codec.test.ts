import assert from "node:assert/strict";
import crypto from "node:crypto";
import { test } from "node:test";
import { DecodeError } from "../../errors.ts";
import { prng, randomBytes, textPage } from "../test-support.ts";
import { chunkHashOfDigests, chunkHashOfPages } from "./chunk-hash.ts";
import { CodecId, codecById, zstdCodec } from "./codec.ts";

test("zstd round-trips and the decoder is not tied to the level", () => {
  const raw = Buffer.concat([textPage(1), textPage(2), randomBytes(prng(1), 4096)]);
  for (const level of [1, 3, 9]) {
    const packed = zstdCodec(level).compress(raw);
    assert.ok(packed.byteLength < raw.byteLength);
    assert.deepEqual(
      Buffer.from(codecById(CodecId.zstd)?.decompress(packed, raw.byteLength) ?? []),
      raw,
    );
  }
});

test("decompression is bounded by the expected length and must match it exactly", () => {
  const raw = Buffer.alloc(64 * 4096, 1);
  const packed = zstdCodec(1).compress(raw);
  const zstd = codecById(CodecId.zstd);
  assert.throws(() => zstd?.decompress(packed, 4096), DecodeError); // a bomb stops at the bound
  assert.throws(
    () => zstd?.decompress(packed, raw.byteLength + 1),
    /holds 262144 bytes, expected 262145/,
  );
  assert.throws(() => zstd?.decompress(Buffer.from("not zstd"), 4096), /does not decompress/);
  assert.throws(() => codecById(CodecId.none)?.decompress(Buffer.alloc(10), 4096), DecodeError);
  assert.equal(codecById(7), null);
});

test("a chunk hash from page digests equals the one recomputed from the pages", () => {
  const raw = Buffer.concat([textPage(1), randomBytes(prng(2), 4096), textPage(3)]);
  const digests = Buffer.concat(
    [0, 1, 2].map((i) => crypto.hash("sha256", raw.subarray(i * 4096, (i + 1) * 4096), "buffer")),
  );
  assert.deepEqual(chunkHashOfPages(raw), chunkHashOfDigests(digests));
  assert.notDeepEqual(chunkHashOfPages(raw), crypto.hash("sha256", raw, "buffer"));
});
