/**
 * Where an x86 PC's RAM sits in guest-physical address space, so a page-table entry's frame
 * number can be turned into a page of the checkpoint's "pc.ram" block.
 *
 * QEMU's pc (i440fx) and q35 machines map the first `below4g` bytes of pc.ram at address 0 and
 * the rest at 4 GiB (hw/i386/pc_piix.c, pc_q35.c, the default max-ram-below-4g):
 * - pc:  all of RAM below 4 GiB when it is under 3.5 GiB, else 3 GiB below and the rest above;
 * - q35: all of RAM below 4 GiB when it is under 2.75 GiB, else 2 GiB below and the rest above.
 * A machine option that moves the split (max-ram-below-4g) is not read: a spec whose machine
 * string or extra arguments could set it, or set another machine, is refused here, since a wrong
 * split would make the walk read ordinary pages as page tables.
 */
import { UsageError } from "../errors.ts";
import { PAGE_SIZE_BYTES } from "../limits.ts";

/** The RAM block of QEMU's pc and q35 machines: the guest's physical memory. */
export const PC_RAM_BLOCK = "pc.ram";

const GIB = 2 ** 30;
const FOUR_GIB_PFN = (4 * GIB) / PAGE_SIZE_BYTES;

export interface RamLayout {
  /** Pages of pc.ram mapped from guest-physical 0. */
  readonly belowPages: number;
  /** Pages of pc.ram mapped from 4 GiB on. */
  readonly abovePages: number;
}

/** Extra QEMU arguments that can move the split or change the machine type. */
const LAYOUT_ARGS = ["-machine", "--machine", "-M", "--M"];
const LAYOUT_PROPERTY = "max-ram-below-4g";

/**
 * The split for `machine` ("pc", "q35", or a versioned name of either) with `ramBytes`, for a VM
 * started with `extraArgs` (the spec's, after snapwake's own `-machine`).
 */
export function ramLayout(
  machine: string,
  ramBytes: number,
  extraArgs: readonly string[] = [],
): RamLayout {
  const moved = extraArgs.find((a) => LAYOUT_ARGS.includes(a) || a.includes(LAYOUT_PROPERTY));
  if (moved !== undefined) {
    throw new UsageError(
      `Cannot map guest-physical memory: the VM spec's extraArgs hold "${moved}", which can ` +
        `move RAM in the address space or change the machine type. Put the machine type in ` +
        `the spec's "machine" field, and leave ${LAYOUT_PROPERTY} at its default`,
    );
  }
  const family = machineFamily(machine);
  const [threshold, split] = family === "pc" ? [3.5 * GIB, 3 * GIB] : [2.75 * GIB, 2 * GIB];
  const below = ramBytes >= threshold ? split : ramBytes;
  return { belowPages: below / PAGE_SIZE_BYTES, abovePages: (ramBytes - below) / PAGE_SIZE_BYTES };
}

function machineFamily(machine: string): "pc" | "q35" {
  if (machine === "pc" || machine.startsWith("pc-i440fx-")) return "pc";
  if (machine === "q35" || machine.startsWith("pc-q35-")) return "q35";
  throw new UsageError(
    `Cannot map guest-physical memory of machine type "${machine}": only pc and q35 are known`,
  );
}

/** The pc.ram page of guest frame `pfn`, or null when the frame is not RAM (a hole, past the end). */
export function ramPageOf(layout: RamLayout, pfn: number): number | null {
  if (pfn < layout.belowPages) return pfn;
  const above = pfn - FOUR_GIB_PFN;
  return above >= 0 && above < layout.abovePages ? layout.belowPages + above : null;
}
