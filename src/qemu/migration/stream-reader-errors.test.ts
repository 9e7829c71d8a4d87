import { ByteWriter } from "../../bytes/index.ts";
import { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { Command, ConfigSubsection, Section } from "./constants.ts";
import {
  command,
  concat,
  configSubsection,
  configuration,
  cut,
  DEVICE,
  header,
  inside,
  offsetOf,
  Piece,
  part,
  type RejectionCase,
  sectionStart,
  spliced,
  testRejections,
  valid,
} from "./test-streams.ts";

const caps = (...names: string[]): Uint8Array => {
  const out = new ByteWriter(64).u32(names.length);
  for (const n of names) out.u8(n.length).latin1(n);
  return out.take();
};
const firstPageData = offsetOf(Piece.firstPage) + 8 + 1 + "pc.ram".length;

const cases: readonly RejectionCase[] = [
  // Header
  {
    name: "bad magic",
    stream: { bytes: concat(header(3, 0x5145564e), valid.subarray(8)), at: 0 },
    error: DecodeError,
    message: /magic 0x5145564e/,
  },
  {
    name: "bad version",
    stream: { bytes: concat(header(4), valid.subarray(8)), at: 4 },
    error: UnsupportedStreamError,
    message: /version 4/,
  },
  {
    name: "obsolete version 2",
    stream: { bytes: concat(header(2), valid.subarray(8)), at: 4 },
    error: UnsupportedStreamError,
    message: /obsolete/,
  }, // Truncation before RAM END
  {
    name: "truncated in the header",
    stream: cut(5, 0),
    error: DecodeError,
    message: /inside the stream header after 5 of 8/,
  },
  {
    name: "truncated in the configuration",
    stream: cut(offsetOf(1) + 7, offsetOf(1) + 5),
    error: DecodeError,
    message: /machine name after 2 of 13/,
  },
  {
    name: "truncated in a page",
    stream: cut(firstPageData + 100, firstPageData),
    error: DecodeError,
    message: /inside a RAM page after 100 of 4096/,
  },
  {
    name: "truncated in a record header",
    stream: cut(offsetOf(Piece.firstPage) + 3, offsetOf(Piece.firstPage)),
    error: DecodeError,
    message: /RAM record header after 3 of 8/,
  },
  {
    name: "truncated between sections",
    stream: cut(offsetOf(Piece.end)),
    error: DecodeError,
    message: /ends before its RAM END/,
  },
  {
    name: "truncated after RAM END",
    stream: cut(offsetOf(Piece.device)),
    error: DecodeError,
    message: /where the device state should start/,
  },
  {
    name: "truncated in the VMDESCRIPTION",
    stream: cut(valid.byteLength - 10, offsetOf(Piece.device) + DEVICE.byteLength - 11),
    error: DecodeError,
    message: /neither with EOF/,
  }, // Top-level items
  {
    name: "unknown section type",
    stream: spliced(Piece.part, Uint8Array.of(0x42)),
    error: DecodeError,
    message: /Unknown section type 0x42/,
  },
  {
    name: "subsection at the top level",
    stream: spliced(Piece.part, Uint8Array.of(Section.subsection)),
    error: DecodeError,
    message: /Unexpected subsection/,
  },
  {
    name: "PART for a non-RAM section",
    stream: spliced(Piece.part, part(5)),
    error: DecodeError,
    message: /section 5, which is not RAM \(2\)/,
  },
  {
    name: "START of another iterable",
    stream: spliced(Piece.start, sectionStart(Section.start, 1, "block")),
    error: UnsupportedStreamError,
    message: /"block": only RAM/,
  },
  {
    name: "RAM section version 5",
    stream: spliced(Piece.start, sectionStart(Section.start, 2, "ram", 0, 5)),
    error: UnsupportedStreamError,
    message: /RAM section version 5/,
  },
  {
    name: "FULL before RAM START",
    stream: spliced(Piece.start, sectionStart(Section.full, 0, "timer")),
    error: UnsupportedStreamError,
    message: /full item before the RAM section/,
  },
  {
    name: "configuration after the first item",
    stream: spliced(Piece.part, configuration()),
    error: DecodeError,
    message: /Configuration section after the first item/,
  },
  {
    name: "second RAM START",
    stream: spliced(Piece.part, sectionStart(Section.start, 2, "ram")),
    error: DecodeError,
    message: /Second RAM START/,
  },
  {
    name: "device state not starting with FULL or EOF",
    stream: spliced(Piece.device, Uint8Array.of(Section.part), DEVICE),
    error: DecodeError,
    message: /must start with a FULL section/,
  },
  {
    name: "oversized device state",
    stream: { bytes: valid, at: offsetOf(Piece.device) },
    options: { deviceStateBytesMax: 10 },
    error: UnsupportedStreamError,
    message: /larger than 10 bytes/,
  }, // Configuration
  {
    name: "x-ignore-shared capability",
    stream: inside(
      spliced(
        Piece.configuration,
        configuration(
          "pc",
          configSubsection(ConfigSubsection.capabilities, caps("x-ignore-shared")),
        ),
      ),
      7 + 32 + 4,
    ),
    error: UnsupportedStreamError,
    message: /x-ignore-shared/,
  },
  {
    name: "unknown configuration subsection",
    stream: inside(
      spliced(
        Piece.configuration,
        configuration("pc", configSubsection("configuration/what", new Uint8Array(0))),
      ),
      7,
    ),
    error: UnsupportedStreamError,
    message: /configuration\/what/,
  }, // Commands
  {
    name: "postcopy LISTEN",
    stream: spliced(Piece.end, command(Command.postcopyListen)),
    error: UnsupportedStreamError,
    message: /postcopyListen \(4\)/,
  },
  {
    name: "PACKAGED",
    stream: spliced(Piece.end, command(Command.packaged, Uint8Array.of(0, 0, 0, 0))),
    error: UnsupportedStreamError,
    message: /packaged \(7\)/,
  },
  {
    name: "unknown command",
    stream: spliced(Piece.part, command(42)),
    error: DecodeError,
    message: /Unknown command 42/,
  },
  {
    name: "PING without a return path",
    stream: spliced(Piece.part, command(Command.ping, Uint8Array.of(0, 0, 0, 1))),
    error: DecodeError,
    message: /PING with no return path/,
  },
  {
    name: "ADVISE of 8 bytes",
    stream: spliced(Piece.part, command(Command.postcopyAdvise, new Uint8Array(8))),
    error: DecodeError,
    message: /length 8, not 0 or 16/,
  },
];

testRejections(cases);
