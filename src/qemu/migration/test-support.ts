/**
 * Helpers shared by this folder's tests: fixtures, chunked inputs, a seeded PRNG, an
 * in-memory sink and a visitor that keeps the final memory image (last record wins).
 * Not part of the public surface.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PAGE_SIZE_BYTES } from "../../limits.ts";
import type { DeviceState, RamBlock, RamSectionInfo, StreamVisitor } from "./records.ts";

const FIXTURES = join(import.meta.dirname, "..", "..", "..", "test", "fixtures");

/** A captured stream of test/fixtures/qemu-<version>/ (default: the 7.2 ones). */
export function fixture(name: string, version: "7.2" | "10.0" = "7.2"): Uint8Array {
  return new Uint8Array(readFileSync(join(FIXTURES, `qemu-${version}`, name)));
}

/** The input in chunks of `size` bytes (the last may be shorter). */
export function chunked(data: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  return chunksOf(data, () => size);
}

/** The input split at seeded random points, chunks of 1 byte to `maxSize`. */
export function randomChunks(
  data: Uint8Array,
  seed: number,
  maxSize: number,
): AsyncIterable<Uint8Array> {
  const random = prng(seed);
  return chunksOf(data, () => 1 + Math.floor(random() * maxSize));
}

/**
 * A plain async iterator, not an async generator: byte-sized chunks mean millions of
 * awaits, and the test runner's async tracking makes each generator step costly.
 */
function chunksOf(data: Uint8Array, nextSize: () => number): AsyncIterable<Uint8Array> {
  let at = 0;
  const iterator: AsyncIterator<Uint8Array> = {
    next: () => {
      if (at >= data.byteLength) return Promise.resolve({ done: true, value: undefined });
      const chunk = data.subarray(at, at + nextSize());
      at += chunk.byteLength;
      return Promise.resolve({ done: false, value: chunk });
    },
  };
  return { [Symbol.asyncIterator]: () => iterator };
}

/** mulberry32: a small deterministic PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

/** A page's final content: a copy of its data, or the fill byte of a ZERO record. */
export type FinalPage = Uint8Array | number;

/** A visitor that keeps the final memory image and the order of callbacks. */
export class MemoryVisitor implements StreamVisitor {
  configRaw: Uint8Array | null = null;
  machine: string | null = null;
  blocks: readonly RamBlock[] = [];
  ram: RamSectionInfo | null = null;
  pages: Map<number, FinalPage>[] = [];
  device: DeviceState | null = null;
  readonly events: string[] = [];

  configuration(config: { machine: string; raw: Uint8Array }): void {
    this.machine = config.machine;
    this.configRaw = config.raw.slice();
    this.events.push("configuration");
  }
  ramBlocks(blocks: readonly RamBlock[], ram: RamSectionInfo): void {
    this.blocks = blocks;
    this.ram = ram;
    this.pages = blocks.map(() => new Map());
    this.events.push("ramBlocks");
  }
  page(blockIndex: number, pageIndex: number, data: Uint8Array): void {
    this.pages[blockIndex]?.set(pageIndex, data.slice());
    if (this.events.at(-1) !== "pages") this.events.push("pages");
  }
  zeroPage(blockIndex: number, pageIndex: number, fill: number): void {
    this.pages[blockIndex]?.set(pageIndex, fill);
    if (this.events.at(-1) !== "pages") this.events.push("pages");
  }
  deviceState(state: DeviceState): void {
    this.device = {
      sections: state.sections.slice(),
      vmdescription: state.vmdescription?.slice() ?? null,
    };
    this.events.push("deviceState");
  }

  /** A digest of every block's final pages (index, fill or content), in index order. */
  digest(): string[] {
    return this.pages.map((pages) => {
      const hash = createHash("sha256");
      for (const index of [...pages.keys()].sort((a, b) => a - b)) {
        const page = pages.get(index);
        hash.update(`${index}:${typeof page === "number" ? `fill ${page}` : "data"};`);
        if (page instanceof Uint8Array) hash.update(page);
      }
      return hash.digest("hex");
    });
  }

  /** SHA-256 of a block's whole final image; unsent pages read as zeros. */
  imageSha256(blockIndex: number): string {
    const pages = this.pages[blockIndex] ?? new Map<number, FinalPage>();
    const count = (this.blocks[blockIndex]?.lengthBytes ?? 0) / PAGE_SIZE_BYTES;
    const hash = createHash("sha256");
    const zero = new Uint8Array(PAGE_SIZE_BYTES);
    for (let i = 0; i < count; i++) {
      const page = pages.get(i) ?? 0;
      hash.update(
        typeof page === "number"
          ? page === 0
            ? zero
            : new Uint8Array(PAGE_SIZE_BYTES).fill(page)
          : page,
      );
    }
    return hash.digest("hex");
  }
}
