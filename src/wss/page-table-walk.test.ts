import assert from "node:assert/strict";
import { test } from "node:test";
import { PAGE_SIZE_BYTES } from "../limits.ts";
import {
  Cr0,
  Cr4,
  clearAccessedBits,
  Efer,
  type PagingRoots,
  Pte,
  walkAccessed,
} from "./page-table-walk.ts";

const A = Pte.accessed;
const P = Pte.present;
const PS = Pte.pageSize;
const RW = 1n << 1n;

/** Synthetic guest RAM of `pages` frames; tables are written into it entry by entry. */
class Ram {
  readonly frames = new Map<number, Uint8Array>();
  readonly pages: number;
  constructor(pages: number) {
    this.pages = pages;
  }
  isRam(pfn: number): boolean {
    return pfn >= 0 && pfn < this.pages;
  }
  async read(pfn: number): Promise<Uint8Array> {
    assert.ok(this.isRam(pfn), "the walk reads RAM only");
    let f = this.frames.get(pfn);
    if (f === undefined) {
      f = new Uint8Array(PAGE_SIZE_BYTES);
      this.frames.set(pfn, f);
    }
    return f;
  }
  async set(table: number, index: number, entry: bigint): Promise<void> {
    const f = await this.read(table);
    new DataView(f.buffer).setBigUint64(index * 8, entry, true);
  }
}

const longMode = (cr3: number, la57 = false): PagingRoots => ({
  cr0: Cr0.pg | 1n,
  cr3: BigInt(cr3) << 12n,
  cr4: Cr4.pae | (la57 ? Cr4.la57 : 0n),
  efer: Efer.lma,
});
const to = (pfn: number) => BigInt(pfn) << 12n;

/** PML4 at 1 → PDPT at 2 → PD at 3 → PT at 4 (all present and accessed). */
async function fourLevels(ram: Ram): Promise<void> {
  await ram.set(1, 0, to(2) | P | RW | A);
  await ram.set(2, 0, to(3) | P | RW | A);
  await ram.set(3, 0, to(4) | P | RW | A);
}

test("4-level: accessed 4 KiB leaves are collected, others counted", async () => {
  const ram = new Ram(4096);
  await fourLevels(ram);
  await ram.set(4, 0, to(100) | P | A);
  await ram.set(4, 1, to(101) | P); // present, not accessed
  await ram.set(4, 2, to(102) | A); // accessed but not present: ignored
  await ram.set(4, 3, to(103) | P | A | (1n << 6n)); // dirty too
  const r = await walkAccessed(ram, [longMode(1)]);
  assert.deepEqual(r.accessedPfns, [100, 103]);
  assert.deepEqual(r.tablePfns, [1, 2, 3, 4]);
  assert.deepEqual(
    [...r.tableLevels],
    [
      [1, 4],
      [2, 3],
      [3, 2],
      [4, 1],
    ].sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0)),
  );
  assert.equal(r.stats.accessedLeaves4KiB, 2);
  assert.equal(r.stats.notAccessedLeaves, 1);
});

test("5-level paging walks one more level", async () => {
  const ram = new Ram(4096);
  await ram.set(9, 5, to(1) | P | A); // PML5 at 9
  await fourLevels(ram);
  await ram.set(4, 7, to(200) | P | A);
  const r = await walkAccessed(ram, [longMode(9, true)]);
  assert.deepEqual(r.accessedPfns, [200]);
  assert.equal(r.tableLevels.get(9), 5);
  // The same tables read as 4-level from CR3 = PML4 give the same pages.
  assert.deepEqual((await walkAccessed(ram, [longMode(1)])).accessedPfns, [200]);
});

test("2 MiB leaves bring their 512 pages; 1 GiB leaves only on request", async () => {
  const ram = new Ram(3 * 262_144);
  await ram.set(1, 0, to(2) | P | A);
  await ram.set(2, 0, to(3) | P | A);
  await ram.set(3, 1, to(512) | P | A | PS); // 2 MiB at frame 512
  await ram.set(3, 2, to(1024) | P | PS); // 2 MiB, not accessed
  await ram.set(2, 1, to(262_144) | P | A | PS); // 1 GiB at 1 GiB
  const r = await walkAccessed(ram, [longMode(1)]);
  assert.equal(r.accessedPfns.length, 512);
  assert.equal(r.accessedPfns[0], 512);
  assert.equal(r.accessedPfns.at(-1), 1023);
  assert.equal(r.stats.skippedLeaves1GiB, 1);
  assert.equal(r.stats.notAccessedLeaves, 1);
  const all = await walkAccessed(ram, [longMode(1)], { include1GiB: true, include2MiB: false });
  assert.equal(all.accessedPfns.length, 262_144);
  assert.equal(all.stats.skippedLeaves2MiB, 1);
});

test("reserved bits and entries outside RAM are counted, not followed", async () => {
  const ram = new Ram(4096);
  await fourLevels(ram);
  await ram.set(1, 1, to(5) | P | A | PS); // PS in a PML4E is reserved
  await ram.set(3, 1, to(512 + 1) | P | A | PS); // 2 MiB leaf with bit 12 (PAT) is fine...
  await ram.set(3, 2, to(1024 + 2) | P | A | PS); // ...bit 13 is reserved
  await ram.set(4, 0, (1n << 45n) | P | A); // above a 40-bit physical address width
  await ram.set(4, 1, to(9999) | P | A); // past the end of RAM
  await ram.set(3, 3, to(50_000) | P | A); // a table outside RAM
  const r = await walkAccessed(ram, [longMode(1)], { maxPhysAddrBits: 40 });
  assert.equal(r.stats.reservedEntries, 3);
  assert.equal(r.stats.outsideRam, 2);
  assert.equal(r.accessedPfns.length, 512);
  assert.ok(!r.tablePfns.includes(50_000));
});

test("a table reached at two levels is not trusted; shared tables are walked once", async () => {
  const ram = new Ram(4096);
  await fourLevels(ram);
  await ram.set(3, 1, to(1) | P | A); // PD entry pointing back at the PML4: a loop
  await ram.set(1, 1, to(2) | P | A); // a second PML4E sharing the PDPT: fine
  await ram.set(4, 0, to(100) | P | A);
  const r = await walkAccessed(ram, [longMode(1), longMode(1)]);
  assert.ok(!r.tablePfns.includes(1), "the looped-to table is dropped from the table set");
  assert.equal(r.stats.ambiguousTables, 1);
  assert.deepEqual(r.accessedPfns, [100]);
  assert.equal(r.stats.roots, 2);
});

test("paging off, 32-bit and PAE outside long mode are noted and not walked", async () => {
  const ram = new Ram(16);
  const r = await walkAccessed(ram, [
    { cr0: 1n, cr3: 0n, cr4: 0n, efer: 0n },
    { cr0: Cr0.pg, cr3: 0n, cr4: 0n, efer: 0n },
    { cr0: Cr0.pg, cr3: 0n, cr4: Cr4.pae, efer: 0n },
  ]);
  assert.equal(r.stats.rootsSkipped, 3);
  assert.deepEqual(r.notes, [
    "vCPU 0: paging off",
    "vCPU 1: 32-bit paging (not walked)",
    "vCPU 2: PAE paging outside long mode (not walked)",
  ]);
});

test("clearing Accessed bits touches present entries' bit 5 only", () => {
  const table = new Uint8Array(PAGE_SIZE_BYTES);
  const v = new DataView(table.buffer);
  const D = 1n << 6n;
  const swapEntry = (0x1234n << 12n) | A; // not present: bits are the kernel's own
  v.setBigUint64(0, to(7) | P | RW | A | D, true);
  v.setBigUint64(8, swapEntry, true);
  v.setBigUint64(16, to(8) | P | PS | A | (1n << 63n), true);
  v.setBigUint64(24, to(9) | P, true);
  const out = clearAccessedBits(table);
  const o = new DataView(out.buffer);
  assert.equal(o.getBigUint64(0, true), to(7) | P | RW | D, "dirty and the rest kept");
  assert.equal(o.getBigUint64(8, true), swapEntry, "non-present entry untouched");
  assert.equal(o.getBigUint64(16, true), to(8) | P | PS | (1n << 63n));
  assert.equal(o.getBigUint64(24, true), to(9) | P);
  assert.equal(v.getBigUint64(0, true), to(7) | P | RW | A | D, "the input is not modified");
  for (let i = 32; i < PAGE_SIZE_BYTES; i++) assert.equal(out[i], 0);
});
