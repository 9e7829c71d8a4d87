/**
 * The POSTCOPY_RAM_DISCARD commands a lazy restore sends before LISTEN
 * (docs/migration-protocol.md §6.1, §6.3): every page not sent in precopy is discarded, in
 * coalesced host-page-aligned byte ranges. The first one turns transparent huge pages off for
 * guest RAM, so the prelude sends them before the working set (its pages then land as 4 KiB
 * pages); were a huge page built around a precopy page, the discard would break it up, since
 * its never-sent neighbours would otherwise be "present" and fail their UFFDIO_COPY with
 * EEXIST. At least one DISCARD must be sent: without one, QEMU 7.2's LISTEN falls back to a
 * state change that makes RUN fail ("CMD_POSTCOPY_RUN in wrong postcopy state (2)").
 */
import assert from "node:assert/strict";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import { type ByteRange, encodePostcopyRamDiscard } from "../../qemu/migration/index.ts";
import type { Placement } from "./placement.ts";

/** Byte ranges of `block` not yet sent, for its DISCARD commands (4 KiB host pages). */
export function discardRanges(placement: Placement, block: number): ByteRange[] {
  return placement.unsentRuns(block).map((run) => ({
    startBytes: run.firstPage * PAGE_SIZE_BYTES,
    lengthBytes: run.pages * PAGE_SIZE_BYTES,
  }));
}

/**
 * Every DISCARD command for the unsent pages of every block, blocks in `names` order. Asserts
 * there is at least one: callers keep at least one page out of the precopy phase.
 */
export function discardCommands(names: readonly string[], placement: Placement): Uint8Array[] {
  assert(names.length === placement.blockCount, "one name per block");
  const commands = names.flatMap((name, block) => {
    const ranges = discardRanges(placement, block);
    return ranges.length === 0 ? [] : encodePostcopyRamDiscard(name, ranges);
  });
  assert(commands.length >= 1, "at least one DISCARD precedes LISTEN (QEMU 7.2 state bug)");
  return commands;
}
