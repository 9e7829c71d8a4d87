import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Command, Section } from "./constants.ts";
import type { StreamSummary } from "./records.ts";
import { readMigrationStream } from "./stream-reader.ts";
import {
  command,
  concat,
  configuration,
  DEVICE_SECTIONS,
  end,
  eos,
  footer,
  header,
  memSize,
  Piece,
  RAM_ID,
  sectionStart,
  validPieces,
  zero,
} from "./test-streams.ts";
import { chunked, fixture, MemoryVisitor, randomChunks } from "./test-support.ts";

const pcMig = fixture("pc.mig");

/**
 * pc.mig, block by block. Record counts, final zero pages and the SHA-256 of each block's
 * final image were computed independently with QEMU's own scripts/analyze-migration.py RAM
 * and VMSD logic (which also parsed every FULL section up to EOF at byte 1636947).
 */
const PC_BLOCKS = [
  [
    "pc.ram",
    0x10000000,
    73,
    65472,
    64,
    65472,
    "280c3934117b07f67e521aba54207fa7e349e042afecf9e8f7c5043ab1518603",
  ],
  [
    "0000:00:02.0/vga.vram",
    0x1000000,
    0,
    4096,
    0,
    4096,
    "080acf35a507ac9849cfcba47dc2ad83e01b75663a516279c8b9d243b719643e",
  ],
  [
    "/rom@etc/acpi/tables",
    0x20000,
    2,
    30,
    2,
    30,
    "3a34d24a4f8eac70be78b4d665451d5ee2bd78b53e66fdd11812e7ae85e6493f",
  ],
  [
    "pc.bios",
    0x40000,
    46,
    18,
    46,
    18,
    "2da2018c7555e50b660a84a273a14a79cb87b9070fe6a90e9f151a53e357f7e6",
  ],
  [
    "0000:00:03.0/e1000.rom",
    0x40000,
    61,
    3,
    61,
    3,
    "b5fbe8d25ff6e346af56e0c51278c787dc7ae6bab2acdb71668dcb4fb25414fc",
  ],
  [
    "pc.rom",
    0x20000,
    0,
    32,
    0,
    32,
    "fa43239bcee7b97ca62f007cc68487560a39e19f74f3dde7486db3f98df8e471",
  ],
  [
    "0000:00:02.0/vga.rom",
    0x10000,
    10,
    6,
    10,
    6,
    "57f4f693c2e687b438c22012ab93b71fc4402600b97e151425a074be0a08a63f",
  ],
  [
    "/rom@etc/table-loader",
    0x1000,
    1,
    0,
    1,
    0,
    "b2d250564d926303334b06e4aa9991f5f5de4ed6299a1561a698656a71507813",
  ],
  [
    "/rom@etc/acpi/rsdp",
    0x1000,
    1,
    0,
    1,
    0,
    "c2f6890df83b0006bca66d32b0fa3d9eb34c99f63e3188e8d80b3d1f8df0e0d0",
  ],
] as const;

/** The 35 FULL sections of pc.mig, in order (from analyze-migration.py and the VMDESCRIPTION). */
const PC_DEVICE_COUNT = 35;
const PC_DEVICE_START_BYTES = 1423568;
const PC_EOF_END_BYTES = 1636947;

async function readAll(
  input: AsyncIterable<Uint8Array>,
): Promise<{ summary: StreamSummary; visitor: MemoryVisitor }> {
  const visitor = new MemoryVisitor();
  const summary = await readMigrationStream(input, visitor);
  return { summary, visitor };
}

test("pc.mig: every RAM block, its length, records and final pages", async () => {
  const { summary, visitor } = await readAll(chunked(pcMig, 65536));
  assert.equal(summary.version, 3);
  assert.equal(summary.machine, "pc-i440fx-7.2");
  assert.deepEqual(summary.ram, { sectionId: 2, instanceId: 0, versionId: 4 });
  assert.deepEqual(
    summary.blocks.map((b) => [
      b.name,
      b.lengthBytes,
      b.pageRecords,
      b.zeroRecords,
      b.finalDataPages,
      b.finalZeroPages,
    ]),
    PC_BLOCKS.map((b) => b.slice(0, 6)),
  );
  PC_BLOCKS.forEach((b, i) => {
    assert.equal(visitor.imageSha256(i), b[6], `final image of ${b[0]}`);
  });
  // §2.4: one PART with 69842 records (69657 ZERO, 185 PAGE), END with 9 PAGE.
  assert.equal(summary.records, 69851);
  assert.equal(summary.streamBytes, pcMig.byteLength);
  assert.equal(summary.ramEnd, "end");
  assert.equal(summary.returnPathOpened, false);
  assert.deepEqual(visitor.events, ["configuration", "ramBlocks", "pages", "deviceState"]);
});

test("pc.mig: configuration verbatim, device state split at EOF and VMDESCRIPTION", async () => {
  const { summary, visitor } = await readAll(chunked(pcMig, 4096));
  assert.deepEqual(visitor.configRaw, pcMig.subarray(8, 0x1a));
  const device = visitor.device;
  assert.ok(device !== null);
  assert.equal(summary.deviceBlobBytes, pcMig.byteLength - PC_DEVICE_START_BYTES);
  assert.deepEqual(device.sections, pcMig.subarray(PC_DEVICE_START_BYTES, PC_EOF_END_BYTES));
  assert.deepEqual(device.vmdescription, pcMig.subarray(PC_EOF_END_BYTES + 5));
  assert.equal(summary.deviceSectionsFrom, "vmdescription");
  assert.equal(summary.deviceSections.length, PC_DEVICE_COUNT);
  assert.deepEqual(summary.deviceSections.slice(0, 3), [
    { name: "timer", instanceId: 0 },
    { name: "slirp", instanceId: 0 },
    { name: "cpu_common", instanceId: 0 },
  ]);
  assert.deepEqual(summary.deviceSections.at(-1), { name: "globalstate", instanceId: 0 });
  assert.ok(summary.deviceSections.some((s) => s.name === "dma" && s.instanceId === 1));
});

test("pc.mig: the same result at every chunk split", async () => {
  const expected = await readAll(chunked(pcMig, pcMig.byteLength));
  const inputs = [1, 2, 3, 7, 4095, 4096, 4097, 65536].map((size) => ({
    size: `${size}`,
    input: chunked(pcMig, size),
  }));
  inputs.push({ size: "random(seed 42)", input: randomChunks(pcMig, 42, 10000) });
  for (const { size, input } of inputs) {
    const got = await readAll(input);
    assert.deepEqual(got.summary, expected.summary, `summary at split ${size}`);
    assert.deepEqual(got.visitor.digest(), expected.visitor.digest(), `pages at split ${size}`);
    assert.deepEqual(got.visitor.device, expected.visitor.device, `device state at split ${size}`);
  }
});

test("pc.mig from a file stream, with a visitor that returns promises", async () => {
  let pages = 0;
  const summary = await readMigrationStream(
    createReadStream(
      join(import.meta.dirname, "..", "..", "..", "test", "fixtures", "qemu-7.2", "pc.mig"),
    ),
    {
      ramBlocks: async () => {},
      page: async () => {
        pages++;
      },
      zeroPage: () => {},
      deviceState: async () => {},
    },
  );
  assert.equal(pages, 194);
  assert.equal(summary.streamBytes, pcMig.byteLength);
});

test("a return path gets PONG for PING and SHUT(0) as soon as the VMDESCRIPTION is complete", {
  timeout: 30_000,
}, async () => {
  const stream = concat(
    header(),
    configuration(),
    command(Command.openReturnPath),
    command(Command.ping, Uint8Array.of(0, 0, 0, 7)),
    sectionStart(Section.start, RAM_ID, "ram"),
    memSize(),
    eos(),
    footer(),
    end(),
    zero(1, "pc.ram"),
    eos(),
    footer(),
    pcMig.subarray(PC_DEVICE_START_BYTES), // a real device state with its VMDESCRIPTION
  );
  const sent: string[] = [];
  const shut = Promise.withResolvers<void>();
  let ended = false;
  async function* held(): AsyncGenerator<Uint8Array> {
    yield stream;
    // Like a QEMU source with a return path: the stream stays open until SHUT arrives.
    await shut.promise;
    ended = true;
  }
  const summary = await readMigrationStream(held(), new MemoryVisitor(), {
    returnPath: (bytes) => {
      const hex = Buffer.from(bytes).toString("hex");
      sent.push(`${hex.slice(0, 8)} ${hex.slice(8)}`);
      if (hex.startsWith("0001")) shut.resolve();
    },
  });
  assert.ok(ended);
  assert.deepEqual(sent, ["00020004 00000007", "00010004 00000000"]);
  assert.equal(summary.returnPathOpened, true);
  assert.equal(summary.deviceSections.length, PC_DEVICE_COUNT);
});

test("a return path without VMDESCRIPTION gets SHUT(0) at the end of the input", async () => {
  const pieces = validPieces();
  pieces.splice(Piece.start, 0, command(Command.openReturnPath));
  pieces.splice(-1, 1, DEVICE_SECTIONS);
  const sent: Uint8Array[] = [];
  await readMigrationStream(chunked(concat(...pieces), 100), new MemoryVisitor(), {
    returnPath: async (bytes) => {
      sent.push(bytes);
    },
  });
  assert.deepEqual(sent, [Uint8Array.of(0, 1, 0, 4, 0, 0, 0, 0)]);
});
