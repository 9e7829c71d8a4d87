/**
 * The few typed operating errors snapwake throws. Low layers throw DecodeError with a byte
 * offset; upper layers wrap it with context via `{ cause }`. `cli/` maps each class to an exit
 * code and a next step. Our own bugs use `assert` from node:assert/strict and are never caught.
 */

/** Bytes that do not decode: a migration stream or a checkpoint file. */
export class DecodeError extends Error {
  override name = "DecodeError";
  readonly offset: number;
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(`${message} (at byte offset ${offset})`, options);
    this.offset = offset;
  }
}

/** A QEMU migration stream that uses a feature snapwake does not handle. */
export class UnsupportedStreamError extends Error {
  override name = "UnsupportedStreamError";
  readonly offset: number;
  constructor(message: string, offset: number, options?: ErrorOptions) {
    super(`${message} (at byte offset ${offset})`, options);
    this.offset = offset;
  }
}

/** A checkpoint that is missing, corrupt, incomplete or of an unknown version. */
export class InvalidCheckpointError extends Error {
  override name = "InvalidCheckpointError";
  readonly checkpoint: string;
  readonly reason: string;
  constructor(checkpoint: string, reason: string, options?: ErrorOptions) {
    super(`Cannot use checkpoint "${checkpoint}": ${reason}`, options);
    this.checkpoint = checkpoint;
    this.reason = reason;
  }
}

/** QEMU failed: it exited, refused a command, or a QMP exchange timed out. */
export class QemuError extends Error {
  override name = "QemuError";
}

/** A user mistake: a bad VM spec, an unknown name, conflicting options. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Something named by the user does not exist (VM, checkpoint). */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/**
 * Cancelled before it finished: by a signal (the CLI turns SIGINT and SIGTERM into this) or by
 * the caller's AbortSignal. Whatever the operation started has been undone when it is thrown.
 */
export class InterruptedError extends Error {
  override name = "InterruptedError";
  /** The signal that asked for it, when one did. */
  readonly signal: NodeJS.Signals | null;
  constructor(message: string, signal: NodeJS.Signals | null = null, options?: ErrorOptions) {
    super(message, options);
    this.signal = signal;
  }
}

/** Another snapwake command holds the store (or the checkpoint) in a way this one cannot share. */
export class StoreBusyError extends Error {
  override name = "StoreBusyError";
}
