import assert from "node:assert/strict";
import { test } from "node:test";
import { Command, ConfigSubsection, Section } from "./constants.ts";
import { readMigrationStream } from "./stream-reader.ts";
import {
  command,
  concat,
  configSubsection,
  configuration,
  DEVICE,
  DEVICE_SECTIONS,
  Piece,
  sectionStart,
  spliced,
  valid,
  validPieces,
} from "./test-streams.ts";
import { chunked, MemoryVisitor } from "./test-support.ts";

test("accepts what 7.2 may legally send", async () => {
  const variants: readonly [string, Uint8Array][] = [
    ["the valid base stream", valid],
    [
      "no configuration section",
      concat(...validPieces().filter((_, i) => i !== Piece.configuration)),
    ],
    [
      "ADVISE of 0 and 16 bytes, OPEN_RETURN_PATH twice",
      spliced(
        Piece.start,
        command(Command.openReturnPath),
        command(Command.openReturnPath),
        command(Command.postcopyAdvise),
        command(Command.postcopyAdvise, new Uint8Array(16)),
        sectionStart(Section.start, 2, "ram"),
      ).bytes,
    ],
    [
      "a lone EOF as device state",
      concat(...validPieces().slice(0, Piece.device), Uint8Array.of(Section.eof)),
    ],
    [
      "device state without VMDESCRIPTION",
      concat(...validPieces().slice(0, Piece.device), DEVICE_SECTIONS),
    ],
    [
      "a UUID and target page bits in the configuration",
      spliced(
        Piece.configuration,
        configuration(
          "pc",
          configSubsection(ConfigSubsection.targetPageBits, Uint8Array.of(0, 0, 0, 12)),
          configSubsection(ConfigSubsection.uuid, new Uint8Array(16)),
        ),
      ).bytes,
    ],
  ];
  for (const [name, bytes] of variants) {
    const summary = await readMigrationStream(chunked(bytes, 4096), new MemoryVisitor());
    assert.equal(summary.streamBytes, bytes.byteLength, name);
  }
});

test("a background-snapshot stream (no RAM END) ends its RAM at the first FULL section", async () => {
  const pieces = validPieces();
  const bytes = concat(...pieces.slice(0, Piece.end), DEVICE);
  const visitor = new MemoryVisitor();
  const summary = await readMigrationStream(chunked(bytes, 7), visitor);
  assert.equal(summary.ramEnd, "background-snapshot");
  assert.deepEqual(visitor.device?.sections, DEVICE_SECTIONS);
  assert.deepEqual(summary.deviceSections, [{ name: "timer", instanceId: 0 }]);
});

test("without a VMDESCRIPTION only the first device section is named", async () => {
  const bytes = concat(...validPieces().slice(0, Piece.device), DEVICE_SECTIONS);
  const summary = await readMigrationStream(chunked(bytes, 4096), new MemoryVisitor());
  assert.equal(summary.deviceSectionsFrom, "first-section");
  assert.deepEqual(summary.deviceSections, [{ name: "timer", instanceId: 0 }]);
});
