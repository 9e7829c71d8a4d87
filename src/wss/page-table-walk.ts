/**
 * Walks x86-64 page tables held in a checkpoint and collects what their Accessed bits say:
 * the guest-physical pages mapped by entries whose A bit is set, and the page-table pages the
 * walk went through (docs/accessed-bits.md).
 *
 * Paging modes: 4-level (CR0.PG, CR4.PAE, EFER.LMA) and 5-level (plus CR4.LA57); 2 MiB and
 * 1 GiB leaves. 32-bit modes (no paging, legacy, PAE without long mode) yield nothing and say so.
 *
 * Invariants:
 * - the walk is bounded by the paging depth and by TABLE_PAGES_MAX: no loop can make it spin;
 * - a page reached as a table at two different levels is not trusted as a page table (it is
 *   dropped from `tablePages` and counted as `ambiguousTables`), so a later edit of A bits
 *   never touches a page whose role is in doubt;
 * - an entry with reserved bits set, or pointing outside guest RAM, is counted and not followed.
 */
import { PAGE_SIZE_BYTES } from "../limits.ts";

/** Guest-physical memory as the walk sees it: 4 KiB frames by number. */
export interface PhysicalMemory {
  /** Whether frame `pfn` is guest RAM (not a hole, not past the end). */
  isRam(pfn: number): boolean;
  /** The content of RAM frame `pfn` (only called when isRam). */
  read(pfn: number): Promise<Uint8Array>;
}

export interface PagingRoots {
  readonly cr0: bigint;
  readonly cr3: bigint;
  readonly cr4: bigint;
  readonly efer: bigint;
}

/** How much a huge leaf brings in (1 GiB leaves are the kernel's direct map: see the ADR). */
export interface WalkOptions {
  /** Include every 4 KiB page of an accessed 2 MiB leaf (default true). */
  readonly include2MiB?: boolean;
  /** Include every 4 KiB page of an accessed 1 GiB leaf (default false). */
  readonly include1GiB?: boolean;
  /** Physical address width of the guest CPU, bits (default 52: no bit above is an address). */
  readonly maxPhysAddrBits?: number;
}

export interface WalkStats {
  readonly roots: number;
  readonly rootsSkipped: number;
  readonly tablePages: number;
  readonly accessedLeaves4KiB: number;
  readonly accessedLeaves2MiB: number;
  readonly accessedLeaves1GiB: number;
  readonly skippedLeaves1GiB: number;
  readonly skippedLeaves2MiB: number;
  readonly notAccessedLeaves: number;
  readonly reservedEntries: number;
  readonly outsideRam: number;
  readonly ambiguousTables: number;
}

export interface WalkResult {
  /** Guest page frame numbers mapped by accessed leaves (kernel and user), ascending. */
  readonly accessedPfns: number[];
  /** Page frame numbers of the page-table pages reached (the root tables included), ascending. */
  readonly tablePfns: number[];
  /** Per table page, its level (1 = page table … 5 = PML5), for an A-bit edit later. */
  readonly tableLevels: ReadonlyMap<number, number>;
  readonly stats: WalkStats;
  /** Why a root was not walked (e.g. "vCPU 1: paging off"). */
  readonly notes: readonly string[];
}

export const Cr0 = { pg: 1n << 31n } as const;
export const Cr4 = { pae: 1n << 5n, la57: 1n << 12n } as const;
export const Efer = { lma: 1n << 10n } as const;
/** Page-table entry bits (Intel SDM vol. 3A §4.5). */
export const Pte = { present: 1n, accessed: 1n << 5n, pageSize: 1n << 7n } as const;

const ENTRIES_PER_TABLE = PAGE_SIZE_BYTES / 8;
/** Far more table pages than any guest of ≤ 64 GiB has; a bound, not an expectation. */
export const TABLE_PAGES_MAX = 1 << 22;
const PAGES_PER_2MIB = 512;
const PAGES_PER_1GIB = 512 * 512;

/** Walks the tables of every root; pages mapped by several roots are listed once. */
export async function walkAccessed(
  memory: PhysicalMemory,
  roots: readonly PagingRoots[],
  options: WalkOptions = {},
): Promise<WalkResult> {
  const w = new Walk(memory, options);
  for (const [i, r] of roots.entries()) await w.root(i, r);
  return w.result();
}

class Walk {
  readonly #mem: PhysicalMemory;
  readonly #include2MiB: boolean;
  readonly #include1GiB: boolean;
  readonly #addrMask: bigint;
  readonly #accessed = new Set<number>();
  readonly #levelOf = new Map<number, number>();
  readonly #ambiguous = new Set<number>();
  readonly #notes: string[] = [];
  readonly #n = {
    roots: 0,
    rootsSkipped: 0,
    accessedLeaves4KiB: 0,
    accessedLeaves2MiB: 0,
    accessedLeaves1GiB: 0,
    skippedLeaves1GiB: 0,
    skippedLeaves2MiB: 0,
    notAccessedLeaves: 0,
    reservedEntries: 0,
    outsideRam: 0,
  };

  constructor(memory: PhysicalMemory, o: WalkOptions) {
    this.#mem = memory;
    this.#include2MiB = o.include2MiB ?? true;
    this.#include1GiB = o.include1GiB ?? false;
    const bits = BigInt(o.maxPhysAddrBits ?? 52);
    this.#addrMask = (1n << bits) - 1n;
  }

  async root(i: number, r: PagingRoots): Promise<void> {
    const mode = pagingLevels(r);
    if (typeof mode === "string") {
      this.#n.rootsSkipped += 1;
      this.#notes.push(`vCPU ${i}: ${mode}`);
      return;
    }
    this.#n.roots += 1;
    // CR3 bits 11:0 are PCID or flags; bits above the address width are not an address.
    await this.#table(Number((r.cr3 & this.#addrMask) >> 12n), mode);
  }

  async #table(pfn: number, level: number): Promise<void> {
    const seen = this.#levelOf.get(pfn);
    if (seen !== undefined) {
      if (seen !== level) this.#ambiguous.add(pfn);
      return; // already walked (tables are shared, e.g. the kernel half of every process)
    }
    if (this.#levelOf.size >= TABLE_PAGES_MAX) {
      throw new RangeError(`Cannot walk more than ${TABLE_PAGES_MAX} page-table pages`);
    }
    if (!this.#mem.isRam(pfn)) {
      this.#n.outsideRam += 1;
      return;
    }
    this.#levelOf.set(pfn, level);
    const page = await this.#mem.read(pfn);
    const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
      const e = view.getBigUint64(i * 8, true);
      if ((e & Pte.present) === 0n) continue;
      await this.#entry(e, level);
    }
  }

  async #entry(e: bigint, level: number): Promise<void> {
    const leaf = level === 1 || ((level === 2 || level === 3) && (e & Pte.pageSize) !== 0n);
    if (!leaf && (e & Pte.pageSize) !== 0n && level > 3) {
      this.#n.reservedEntries += 1; // PS must be 0 in a PML4E / PML5E
      return;
    }
    const addr = e & 0x000f_ffff_ffff_f000n;
    if ((addr & ~this.#addrMask) !== 0n) {
      this.#n.reservedEntries += 1;
      return;
    }
    if (!leaf) {
      await this.#table(Number(addr >> 12n), level - 1);
      return;
    }
    if ((e & Pte.accessed) === 0n) {
      this.#n.notAccessedLeaves += 1;
      return;
    }
    if (level === 1) {
      this.#n.accessedLeaves4KiB += 1;
      this.#addRun(Number(addr >> 12n), 1);
    } else if (level === 2) {
      // Bits 20:13 of a 2 MiB leaf are reserved (bit 12 is PAT).
      if ((addr & 0x1f_e000n) !== 0n) this.#n.reservedEntries += 1;
      else if (!this.#include2MiB) this.#n.skippedLeaves2MiB += 1;
      else {
        this.#n.accessedLeaves2MiB += 1;
        this.#addRun(Number(addr >> 21n) * PAGES_PER_2MIB, PAGES_PER_2MIB);
      }
    } else {
      if ((addr & 0x3fff_e000n) !== 0n) this.#n.reservedEntries += 1;
      else if (!this.#include1GiB) this.#n.skippedLeaves1GiB += 1;
      else {
        this.#n.accessedLeaves1GiB += 1;
        this.#addRun(Number(addr >> 30n) * PAGES_PER_1GIB, PAGES_PER_1GIB);
      }
    }
  }

  /** Adds the RAM pages of a run; pages outside RAM (MMIO holes) are not added. */
  #addRun(firstPfn: number, pages: number): void {
    for (let p = firstPfn; p < firstPfn + pages; p++) {
      if (!this.#mem.isRam(p)) {
        this.#n.outsideRam += 1;
        if (pages === 1) return;
        continue;
      }
      this.#accessed.add(p);
    }
  }

  result(): WalkResult {
    const tables = new Map([...this.#levelOf].filter(([pfn]) => !this.#ambiguous.has(pfn)));
    const byNumber = (a: number, b: number) => a - b;
    return {
      accessedPfns: [...this.#accessed].sort(byNumber),
      tablePfns: [...tables.keys()].sort(byNumber),
      tableLevels: tables,
      stats: {
        ...this.#n,
        tablePages: tables.size,
        ambiguousTables: this.#ambiguous.size,
      },
      notes: this.#notes,
    };
  }
}

/** The paging depth these registers select, or why there is nothing to walk. */
export function pagingLevels(r: PagingRoots): 4 | 5 | string {
  if ((r.cr0 & Cr0.pg) === 0n) return "paging off";
  if ((r.cr4 & Cr4.pae) === 0n) return "32-bit paging (not walked)";
  if ((r.efer & Efer.lma) === 0n) return "PAE paging outside long mode (not walked)";
  return (r.cr4 & Cr4.la57) !== 0n ? 5 : 4;
}

/**
 * A copy of the page-table page `table` with the Accessed bit cleared in every present entry.
 * Nothing else changes: not the Dirty bit, not a non-present entry (Linux keeps swap entries
 * and PROT_NONE state in those bits), not a reserved bit.
 */
export function clearAccessedBits(table: Uint8Array): Uint8Array {
  const out = new Uint8Array(table);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
    const e = view.getBigUint64(i * 8, true);
    if ((e & Pte.present) !== 0n && (e & Pte.accessed) !== 0n) {
      view.setBigUint64(i * 8, e & ~Pte.accessed, true);
    }
  }
  return out;
}
