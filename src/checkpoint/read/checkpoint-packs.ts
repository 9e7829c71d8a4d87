/**
 * The packs a checkpoint's chunks live in: its own `chunks.pack`, and (1.2) the shared packs
 * of the checkpoints it was saved incrementally from, hard-linked into its directory as
 * `pack-<id>.pack` (docs/format.md §2.4, ADR 0007). Each is opened once, its size and header
 * checked; a chunk's stored bytes are read from the pack its chunk-table entry names.
 *
 * Invariant: every handle opened here is closed by `close`, or before a failed `open` throws.
 * Chunk reads go through the emulated slow store when one is set (read-throttle.ts).
 */
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { InvalidCheckpointError } from "../../errors.ts";
import { PACK_HEADER_BYTES } from "../format/format.ts";
import type { Manifest } from "../format/manifest.ts";
import { checkPackHeader } from "../format/pack-header.ts";
import { throttledRead } from "./read-throttle.ts";

export class CheckpointPacks {
  readonly #name: string;
  readonly #files: readonly string[];
  readonly #handles: readonly FileHandle[];

  private constructor(name: string, files: readonly string[], handles: readonly FileHandle[]) {
    this.#name = name;
    this.#files = files;
    this.#handles = handles;
  }

  /** Opens and checks every pack of the checkpoint in `dir` (sizes were checked by checkFiles). */
  static async open(dir: string, manifest: Manifest, name: string): Promise<CheckpointPacks> {
    const files = [manifest.chunks.file, ...manifest.packs.map((p) => p.file)];
    const handles: FileHandle[] = [];
    try {
      for (const file of files) {
        const handle = await open(join(dir, file), "r");
        handles.push(handle);
        const header = Buffer.alloc(PACK_HEADER_BYTES);
        const { bytesRead } = await handle.read(header, 0, PACK_HEADER_BYTES, 0);
        const problem = checkPackHeader(header.subarray(0, bytesRead));
        if (problem !== null)
          throw new InvalidCheckpointError(name, `pack file "${file}" ${problem}`);
      }
    } catch (error) {
      for (const h of handles) await h.close();
      throw error;
    }
    return new CheckpointPacks(name, files, handles);
  }

  /** `bytes` stored bytes of `chunk` at `offset` of pack `pack` (0 own, k the k-th shared). */
  async read(chunk: number, pack: number, offset: number, bytes: number): Promise<Buffer> {
    const handle = this.#handles[pack];
    const file = this.#files[pack];
    if (handle === undefined || file === undefined)
      throw new InvalidCheckpointError(this.#name, `chunk ${chunk} names missing pack ${pack}`);
    return throttledRead(bytes, async () => {
      const stored = Buffer.allocUnsafe(bytes);
      let done = 0;
      while (done < bytes) {
        const { bytesRead } = await handle.read(stored, done, bytes - done, offset + done);
        if (bytesRead === 0)
          throw new InvalidCheckpointError(
            this.#name,
            `pack file "${file}" ends inside chunk ${chunk}`,
          );
        done += bytesRead;
      }
      return stored;
    });
  }

  /**
   * The open file descriptor of pack `pack`, for chunk workers reading in other threads (the
   * descriptor, unlike the path, stays this pack even if the checkpoint is renamed or replaced);
   * valid until `close`.
   */
  fdOf(pack: number): number | null {
    return this.#handles[pack]?.fd ?? null;
  }

  /** The file name of pack `pack` in the checkpoint directory. */
  fileOf(pack: number): string | null {
    return this.#files[pack] ?? null;
  }

  async close(): Promise<void> {
    for (const h of this.#handles) await h.close();
  }
}
