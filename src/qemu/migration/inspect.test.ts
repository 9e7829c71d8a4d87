import assert from "node:assert/strict";
import { test } from "node:test";
import { formatInspection, inspectMigrationStream } from "./inspect.ts";
import { concat, DEVICE_SECTIONS, Piece, validPieces } from "./test-streams.ts";
import { chunked, fixture } from "./test-support.ts";

test("inspects pc.mig: header, configuration, blocks with final pages, device sections", async () => {
  const pcMig = fixture("pc.mig");
  const desc = await inspectMigrationStream(chunked(pcMig, 65536));
  assert.deepEqual(JSON.parse(JSON.stringify(desc)), desc, "JSON-able");
  assert.deepEqual(desc.header, { magic: "QEVM", version: 3 });
  assert.deepEqual(desc.configuration, { machine: "pc-i440fx-7.2", bytes: 18 });
  assert.equal(desc.ram.totalBytes, 0x110d2000);
  assert.equal(desc.ram.records, 69851);
  assert.deepEqual(desc.blocks[0], {
    name: "pc.ram",
    lengthBytes: 0x10000000,
    pages: 65536,
    dataPages: 64,
    zeroPages: 65472,
    unsentPages: 0,
    pageRecords: 73,
    zeroRecords: 65472,
  });
  assert.equal(desc.blocks.length, 9);
  assert.deepEqual(desc.deviceState.bytes, 320120);
  assert.deepEqual(desc.deviceState.vmdescriptionBytes, 106736);
  assert.equal(desc.deviceState.sections.length, 35);
  assert.equal(desc.streamBytes, pcMig.byteLength);

  const text = formatInspection(desc);
  assert.match(text, /^QEMU migration stream, version 3, 1743688 bytes$/m);
  assert.match(text, /^machine: pc-i440fx-7\.2$/m);
  assert.match(text, /^RAM: section 2, 272\.8 MiB in 9 blocks, 69851 records$/m);
  assert.match(text, /^block +size +pages +data +zero +unsent +PAGE recs +ZERO recs$/m);
  assert.match(text, /^pc\.ram +256 MiB +65536 +64 +65472 +0 +73 +65472$/m);
  assert.match(text, /^\/rom@etc\/acpi\/rsdp +4 KiB +1 +1 +0 +0 +1 +0$/m);
  assert.match(
    text,
    /^device sections \(35\): timer, slirp, cpu_common, .*, dma, dma#1, .*globalstate$/m,
  );
});

test("inspection says what it can without a VMDESCRIPTION", async () => {
  const bytes = concat(...validPieces().slice(0, Piece.device), DEVICE_SECTIONS);
  const desc = await inspectMigrationStream(chunked(bytes, 100));
  assert.equal(desc.deviceState.vmdescriptionBytes, null);
  assert.equal(desc.deviceState.sectionsFrom, "first-section");
  assert.deepEqual(
    desc.blocks.map((b) => [b.name, b.dataPages, b.zeroPages, b.unsentPages]),
    [
      ["pc.ram", 3, 1, 0],
      ["vga", 1, 1, 0],
    ],
  );
  assert.match(formatInspection(desc), /first device section: timer \(no VMDESCRIPTION/);
});
