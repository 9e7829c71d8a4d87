import assert from "node:assert/strict";
import { test } from "node:test";
import { ByteReader } from "../../bytes/index.ts";
import { UnsupportedStreamError } from "../../errors.ts";
import {
  type ByteRange,
  buildPostcopyPackage,
  discardRangesPerCommandMax,
  encodeOpenReturnPath,
  encodePackaged,
  encodePing,
  encodePostcopyAdvise,
  encodePostcopyListen,
  encodePostcopyRamDiscard,
  encodePostcopyRun,
} from "./commands.ts";
import { Command, Section } from "./constants.ts";
import { readMigrationStream } from "./stream-reader.ts";
import { chunked, fixture, MemoryVisitor } from "./test-support.ts";

/**
 * Both directions of a real QEMU 7.2 postcopy migration; offsets from
 * docs/migration-protocol.md §5.
 */
const src2dst = fixture("pc-postcopy.src2dst.bin");
const At = {
  openReturnPath: 0x1a,
  ping1: 0x1f,
  advise: 0x28,
  firstDiscard: 0x999d8,
  ping2: 0x99b1f,
  packaged: 0x99b28,
  ping4: 0x9d35a,
} as const;

const bytesAt = (at: number, length: number): Uint8Array => src2dst.subarray(at, at + length);

interface CapturedDiscard {
  readonly name: string;
  readonly ranges: ByteRange[];
  readonly bytes: number;
}

/** Decodes one captured POSTCOPY_RAM_DISCARD independently of the encoder. */
function decodeDiscard(at: number): CapturedDiscard {
  const r = new ByteReader(src2dst.subarray(at), at);
  assert.equal(r.u8(), Section.command);
  assert.equal(r.u16(), Command.postcopyRamDiscard);
  const length = r.u16();
  assert.equal(r.u8(), 0, "discard version");
  const name = r.latin1(r.u8());
  assert.equal(r.u8(), 0, "name terminator");
  const ranges: ByteRange[] = [];
  for (let n = (length - 3 - name.length) / 16; n > 0; n--) {
    ranges.push({ startBytes: r.u64Number("start"), lengthBytes: r.u64Number("length") });
  }
  return { name, ranges, bytes: 5 + length };
}

test("command encoders match the captured stream byte for byte", () => {
  assert.deepEqual(encodeOpenReturnPath(), bytesAt(At.openReturnPath, 5));
  assert.deepEqual(encodePing(1), bytesAt(At.ping1, 9));
  assert.deepEqual(encodePostcopyAdvise(0x1000, 0x1000), bytesAt(At.advise, 21));
  assert.deepEqual(encodePing(2), bytesAt(At.ping2, 9));
  assert.deepEqual(encodePing(4), bytesAt(At.ping4, 9));
});

test("POSTCOPY_RAM_DISCARD re-encodes the captured commands, one per block", () => {
  const captured: CapturedDiscard[] = [];
  for (let at = At.firstDiscard; at < At.ping2; ) {
    const discard = decodeDiscard(at);
    captured.push(discard);
    at += discard.bytes;
  }
  assert.deepEqual(
    captured.map((d) => d.name),
    ["pc.ram", "0000:00:02.0/vga.vram", "/rom@etc/acpi/tables", "pc.bios", "pc.rom"].concat([
      "0000:00:02.0/vga.rom",
      "/rom@etc/table-loader",
      "/rom@etc/acpi/rsdp",
    ]),
  );
  assert.deepEqual(captured[0]?.ranges, [
    { startBytes: 0x3f000, lengthBytes: 0x15000 },
    { startBytes: 0xcba0000, lengthBytes: 0x73460000 },
  ]);
  const encoded = captured.flatMap((d) =>
    encodePostcopyRamDiscard(d.name, d.ranges, { rangesPerCommandMax: 12 }),
  );
  assert.deepEqual(
    Buffer.concat(encoded),
    Buffer.from(src2dst.subarray(At.firstDiscard, At.ping2)),
  );
});

test("POSTCOPY_RAM_DISCARD splits many ranges so each command fits a be16 length", () => {
  const ranges = Array.from({ length: 10_000 }, (_, i) => ({
    startBytes: i * 2 * 4096,
    lengthBytes: 4096,
  }));
  const perCommand = discardRangesPerCommandMax("pc.ram");
  assert.equal(perCommand, 4095);
  const commands = encodePostcopyRamDiscard("pc.ram", ranges);
  assert.equal(commands.length, Math.ceil(10_000 / perCommand));
  const decoded: ByteRange[] = [];
  for (const command of commands) {
    const r = new ByteReader(command);
    r.skip(3);
    const length = r.u16();
    assert.equal(length, command.byteLength - 5);
    assert.ok(length <= 0xffff);
    decoded.push(...decodeRanges(command));
  }
  assert.deepEqual(decoded, ranges);
  assert.deepEqual(encodePostcopyRamDiscard("pc.ram", []), []);
});

function decodeRanges(command: Uint8Array): ByteRange[] {
  const r = new ByteReader(command);
  r.skip(5 + 1);
  r.skip(r.u8() + 1);
  const ranges: ByteRange[] = [];
  while (r.remaining > 0) {
    ranges.push({ startBytes: r.u64Number("start"), lengthBytes: r.u64Number("length") });
  }
  return ranges;
}

test("the postcopy package matches the captured PACKAGED command (§5)", () => {
  const header = new ByteReader(bytesAt(At.packaged, 9));
  assert.deepEqual(
    [header.u8(), header.u16(), header.u16()],
    [Section.command, Command.packaged, 4],
  );
  const blobLength = header.u32();
  assert.equal(At.packaged + 9 + blobLength, At.ping4, "PING 4 follows the package");
  const blob = bytesAt(At.packaged + 9, blobLength);
  // The capture: LISTEN, the FULL sections, PING(3), RUN.
  const listen = encodePostcopyListen();
  const tail = Buffer.concat([encodePing(3), encodePostcopyRun()]);
  assert.deepEqual(blob.subarray(0, listen.byteLength), listen);
  assert.deepEqual(Buffer.from(blob.subarray(blob.byteLength - tail.byteLength)), tail);
  const sections = blob.subarray(listen.byteLength, blob.byteLength - tail.byteLength);
  assert.equal(new ByteReader(sections).u8(), Section.full);
  // What a save would have captured: those sections + EOF (+ VMDESCRIPTION, dropped).
  const state = {
    sections: new Uint8Array(Buffer.concat([sections, Uint8Array.of(Section.eof)])),
    vmdescription: new TextEncoder().encode('{"devices":[]}'),
  };
  const built = buildPostcopyPackage(state, { pingBeforeRun: 3 });
  assert.deepEqual(built, blob);
  assert.deepEqual(encodePackaged(built), bytesAt(At.packaged, 9 + blobLength));
  const plain = buildPostcopyPackage(state);
  assert.equal(plain.byteLength, blob.byteLength - 9);
});

test("the reader takes the precopy part of a postcopy stream and stops at DISCARD", async () => {
  const pongs: Uint8Array[] = [];
  await assert.rejects(
    readMigrationStream(chunked(src2dst, 65536), new MemoryVisitor(), {
      returnPath: (bytes) => {
        pongs.push(bytes);
      },
    }),
    (e: unknown) => {
      assert.ok(e instanceof UnsupportedStreamError);
      assert.equal(e.offset, At.firstDiscard);
      assert.match(e.message, /postcopyRamDiscard \(6\)/);
      return true;
    },
  );
  assert.deepEqual(pongs, [fixture("pc-postcopy.returnpath.bin").subarray(0, 8)]);
});
