/**
 * Quotes the end of QEMU's log (its stderr) in error messages: when QEMU dies, its last
 * line is usually the reason ("could not open kernel file …").
 */
import { open } from "node:fs/promises";
import { QEMU_LOG_TAIL_BYTES_MAX } from "../../limits.ts";

/** A sentence describing the last bytes of `logPath`, ready to append to an error message. */
export async function describeQemuLog(logPath: string): Promise<string> {
  let text: string;
  try {
    text = await readTail(logPath, QEMU_LOG_TAIL_BYTES_MAX);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return `QEMU's log ${logPath} could not be read (${reason}).`;
  }
  const trimmed = text.trim();
  if (trimmed === "") return `QEMU wrote nothing to its log ${logPath}.`;
  // No path here: after a failed start the state directory holding the log is gone.
  return `QEMU's log ends with:\n${trimmed}`;
}

async function readTail(path: string, bytesMax: number): Promise<string> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    const length = Math.min(size, bytesMax);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await file.read(buffer, 0, length, size - length);
    const text = buffer.subarray(0, bytesRead).toString("utf8");
    // Start at a line boundary when the tail cut a line (or a UTF-8 character) in two.
    const firstNewline = text.indexOf("\n");
    return size > bytesMax && firstNewline !== -1 ? text.slice(firstNewline + 1) : text;
  } finally {
    await file.close();
  }
}
