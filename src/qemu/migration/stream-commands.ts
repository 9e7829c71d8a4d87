/**
 * The commands a precopy stream may carry: OPEN_RETURN_PATH, PING, POSTCOPY_ADVISE (sent when
 * postcopy or dirty bitmaps are merely enabled) and SWITCHOVER_START (QEMU 10.0, machine
 * types ≥ 10.0: marks the switchover, before the final RAM pass; docs/qemu-versions.md). Every
 * other command means postcopy, COLO or recovery is under way: rejected, with its offset.
 */
import type { ByteSource } from "../../bytes/index.ts";
import { DecodeError, UnsupportedStreamError } from "../../errors.ts";
import { COMMAND_NAMES, Command, POSTCOPY_ADVISE_BYTES } from "./constants.ts";

export type PrecopyCommand =
  | { readonly kind: "open-return-path" }
  | { readonly kind: "ping"; readonly value: number }
  | { readonly kind: "postcopy-advise"; readonly payloadBytes: number }
  | { readonly kind: "switchover-start" };

/** Reads a command item whose 0x08 type byte at `at` was just consumed. */
export async function readPrecopyCommand(src: ByteSource, at: number): Promise<PrecopyCommand> {
  const head = await src.read(4, "a command header");
  const command = head.u16();
  const length = head.u16();
  const expect = (lengths: readonly number[]): void => {
    if (!lengths.includes(length)) {
      throw new DecodeError(
        `Command ${COMMAND_NAMES.get(command)} has length ${length}, not ${lengths.join(" or ")}`,
        at,
      );
    }
  };
  switch (command) {
    case Command.openReturnPath:
      expect([0]);
      return { kind: "open-return-path" };
    case Command.ping:
      expect([4]);
      return { kind: "ping", value: (await src.read(4, "a PING value")).u32() };
    case Command.postcopyAdvise:
      expect([0, POSTCOPY_ADVISE_BYTES]);
      (await src.read(length, "a POSTCOPY_ADVISE payload")).skip(length);
      return { kind: "postcopy-advise", payloadBytes: length };
    case Command.switchoverStart:
      expect([0]);
      return { kind: "switchover-start" };
    default: {
      const name = COMMAND_NAMES.get(command);
      if (name === undefined || command === Command.invalid) {
        throw new DecodeError(`Unknown command ${command}`, at);
      }
      throw new UnsupportedStreamError(
        `Command ${name} (${command}) is unsupported: snapwake reads precopy streams only`,
        at,
      );
    }
  }
}
