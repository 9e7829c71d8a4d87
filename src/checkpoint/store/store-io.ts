/**
 * The one seam between the checkpoint writer and the file system's write path, so tests can
 * inject a failing disk (ENOSPC, EIO) deterministically. Reads and directory operations use
 * node:fs directly.
 */
import { open } from "node:fs/promises";
import { InvalidCheckpointError, UsageError } from "../../errors.ts";
import { errorCode } from "../../util/index.ts";

/** The subset of fs.promises.FileHandle the writer uses. */
export interface WritableFile {
  write(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreIo {
  /** Creates `path` for writing; it must not exist yet (write-once files). */
  createFile(path: string): Promise<WritableFile>;
}

export const nodeStoreIo: StoreIo = {
  createFile: (path) => open(path, "wx"),
};

/** A failure to write a checkpoint: disk full, I/O error, permissions. Nothing was listed. */
export class CheckpointWriteError extends Error {
  override name = "CheckpointWriteError";
  readonly checkpoint: string;
  /** The system error code (ENOSPC, EIO, EACCES, …) when there is one. */
  readonly code: string | undefined;
  constructor(checkpoint: string, action: string, cause: unknown) {
    const code = errorCode(cause);
    const why = code === "ENOSPC" ? "the disk is full" : reasonOf(cause);
    super(`Cannot write checkpoint "${checkpoint}": ${why} (while ${action}); nothing was saved`, {
      cause,
    });
    this.checkpoint = checkpoint;
    this.code = code;
  }
}

/** An InvalidCheckpointError's reason (without its "Cannot use…" prefix), or the message. */
function reasonOf(error: unknown): string {
  if (error instanceof InvalidCheckpointError) return error.reason;
  return error instanceof Error ? error.message : String(error);
}

/** Writes all `length` bytes at `position`; a short write is retried, a zero-byte one fails. */
export async function writeFully(
  file: WritableFile,
  buffer: Uint8Array,
  length: number,
  position: number,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await file.write(buffer, done, length - done, position + done);
    if (bytesWritten <= 0) {
      throw Object.assign(new Error("no space left on device (write made no progress)"), {
        code: "ENOSPC",
      });
    }
    done += bytesWritten;
  }
}

/** Writes a whole small file (index, device state, manifest), fsyncs and closes it. */
export async function writeWholeFile(io: StoreIo, path: string, bytes: Uint8Array): Promise<void> {
  const file = await io.createFile(path);
  try {
    await writeFully(file, bytes, bytes.byteLength, 0);
    await file.sync();
  } finally {
    await file.close();
  }
}

/**
 * Typed errors pass through; system errors (ENOSPC, EIO…) become CheckpointWriteError. With
 * `shares`, the checkpoint names other checkpoints' packs, which a failed read-back may blame.
 */
export function wrapWriteError(
  name: string,
  action: string,
  error: unknown,
  shares = false,
): unknown {
  if (!(error instanceof Error) || error.name === "AssertionError") return error;
  if (error instanceof CheckpointWriteError || error instanceof UsageError) return error;
  if (error.name === "InvalidCheckpointError") {
    const hint = shares
      ? "; a bad shared pack is damage in the checkpoint that wrote it: save with --full, rm that one"
      : "";
    return new CheckpointWriteError(name, `verifying what was written${hint}`, error);
  }
  return new CheckpointWriteError(name, action, error);
}
