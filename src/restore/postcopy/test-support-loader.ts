/** Shared by the chunk loader's tests (chunk-loader*.test.ts): a small checkpoint, a held store. */
import { read } from "node:fs";
import { FileName } from "../../checkpoint/format/format.ts";
import { CheckpointReader } from "../../checkpoint/index.ts";
import { flipBit, tempStore, textPage, writePages } from "../../checkpoint/test-support.ts";
import type { ReadAt } from "./stored-read.ts";

export const CHUNKS = 12;

/** A checkpoint of CHUNKS chunks of 64 text pages each (zstd); `corrupt`: a bit of it flipped. */
export async function withReader(
  body: (reader: CheckpointReader, home: string) => Promise<void>,
  corrupt: number | null = null,
  pageOf: (page: number) => Uint8Array = textPage,
): Promise<void> {
  const t = await tempStore();
  try {
    const listing = await writePages(t.store, "c", CHUNKS * 64, pageOf);
    if (corrupt !== null) {
      const probe = await CheckpointReader.open(t.store, "c");
      const e = probe.chunks.entry(corrupt);
      await probe.close();
      await flipBit(listing.dir, FileName.pack, e.offset + Math.floor(e.storedBytes / 2));
    }
    const reader = await CheckpointReader.open(t.store, "c");
    try {
      await body(reader, t.home);
    } finally {
      await reader.close();
    }
  } finally {
    await t.cleanup();
  }
}

/** A store whose reads wait until released: counts those in flight and the order they began. */
export function gatedStore(reader: CheckpointReader) {
  const chunkAt = new Map<number, number>();
  for (let c = 0; c < CHUNKS; c++) chunkAt.set(reader.chunks.entry(c).offset, c);
  const held: (() => void)[] = [];
  const s = { inFlight: 0, most: 0, began: [] as number[], held };
  const readAt: ReadAt = (fd, into, position) => {
    s.inFlight += 1;
    s.most = Math.max(s.most, s.inFlight);
    s.began.push(chunkAt.get(position) ?? -1);
    return new Promise((resolve, reject) => {
      held.push(() =>
        read(fd, into, 0, into.byteLength, position, (error, n) => {
          s.inFlight -= 1;
          if (error === null) resolve(n);
          else reject(error);
        }),
      );
    });
  };
  return { s, readAt, release: () => held.shift()?.() };
}

export async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}
