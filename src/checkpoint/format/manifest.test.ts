import assert from "node:assert/strict";
import { test } from "node:test";
import { InvalidCheckpointError, UsageError } from "../../errors.ts";
import { toJsonObject } from "./json-value.ts";
import { decodeManifest, encodeManifest, type ManifestBody } from "./manifest.ts";

const body: ManifestBody = {
  name: "m",
  createdAt: "2026-01-01T00:00:00.000Z",
  pageSizeBytes: 4096,
  vm: { name: "vm", args: ["-m", "256"] },
  qemu: { version: "7.2.22" },
  stream: { configuration: "AQID", info: { ram: { sectionId: 2 } } },
  ramBlocks: [{ name: "pc.ram", lengthBytes: 8192, pageCount: 2 }],
  deviceState: { file: "device.bin", bytes: 40, sha256: "a".repeat(64) },
  index: { file: "index.bin", bytes: 100, sha256: "b".repeat(64) },
  chunks: { file: "chunks.pack", count: 1, bytes: 200, codec: "zstd", level: 1, chunkPagesMax: 64 },
  statistics: {
    pagesTotal: 2,
    pagesZero: 1,
    pagesUnsent: 0,
    pagesStored: 1,
    pagesUnique: 1,
    pagesDuplicate: 0,
    pagesStale: 0,
    slotsUnreferenced: 0,
    pagesReceived: 2,
    rawBytes: 8192,
    chunkRawBytes: 4096,
    chunkStoredBytes: 184,
    storedBytes: 340,
    compressionRatio: 24.09,
    writeMs: 3,
    pagesDisk: 0,
    diskRefs: 0,
    diskRawBytes: 0,
    pagesShared: 0,
    sharedChunks: 0,
    sharedStoredBytes: 0,
  },
  layers: [],
  disks: [],
  packs: [],
};

test("a manifest decodes to what was encoded, with its version", () => {
  const bytes = encodeManifest(body);
  assert.match(
    Buffer.from(bytes).toString(),
    /^snapwake-checkpoint 1\.0\nsha256 [0-9a-f]{64} \d+\n\{/,
  );
  assert.deepEqual(decodeManifest(bytes, "m"), { format: "1.0", ...body });
});

test("fields are checked after the hash, with the field's path", () => {
  const bad = (edit: object, field: string) => {
    const bytes = encodeManifest({ ...body, ...edit } as ManifestBody);
    assert.throws(
      () => decodeManifest(bytes, "m"),
      (e: unknown) =>
        e instanceof InvalidCheckpointError &&
        e.reason === `manifest field "${field}" is missing or invalid`,
    );
  };
  bad(
    { ramBlocks: [{ name: "pc.ram", lengthBytes: "8192", pageCount: 2 }] },
    "ramBlocks[0].lengthBytes",
  );
  bad({ index: { ...body.index, file: "../etc/passwd" } }, "index.file");
  bad({ chunks: { ...body.chunks, codec: "lz4" } }, "chunks.codec");
  bad({ stream: { configuration: "!!", info: {} } }, "stream.configuration");
  bad({ name: "a/b" }, "name");
});

test("a malformed hash line is rejected before anything else is read", () => {
  const text = Buffer.from(encodeManifest(body))
    .toString()
    .replace(/^sha256 ([0-9a-f]{64})/m, "sha256 $1x");
  assert.throws(() => decodeManifest(Buffer.from(text), "m"), /manifest hash line is malformed/);
});

test("caller objects must be plain JSON; undefined properties are dropped", () => {
  assert.deepEqual(toJsonObject({ a: 1, b: undefined, c: [null, "x"] }, "spec"), {
    a: 1,
    c: [null, "x"],
  });
  assert.throws(() => toJsonObject({ a: new Uint8Array(1) }, "the stream info"), UsageError);
  assert.throws(() => toJsonObject({ a: 1n }, "spec"), /spec\.a is bigint/);
  assert.throws(() => toJsonObject({ a: Number.NaN }, "spec"), /spec\.a is NaN/);
  assert.throws(() => toJsonObject(new Date(), "spec"), /must be a plain JSON object/);
});
