/**
 * Splits a QMP byte stream into lines. QMP is newline-delimited JSON (QEMU ends lines with
 * "\r\n"). Works on bytes so a multi-byte UTF-8 character split across chunks decodes intact.
 * Invariant: never buffers more than `lineBytesMax` bytes of an unfinished line.
 */
import { QemuError } from "../../errors.ts";

const NEWLINE = 0x0a;

export class LineSplitter {
  readonly #lineBytesMax: number;
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  #partial: Uint8Array[] = [];
  #partialBytes = 0;

  constructor(lineBytesMax: number) {
    this.#lineBytesMax = lineBytesMax;
  }

  /** The complete lines in `chunk` (plus what came before it), without "\r\n"; empty lines skipped. */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    let rest = chunk;
    for (let end = rest.indexOf(NEWLINE); end !== -1; end = rest.indexOf(NEWLINE)) {
      this.#append(rest.subarray(0, end));
      const line = this.#take().trimEnd();
      if (line !== "") lines.push(line);
      rest = rest.subarray(end + 1);
    }
    this.#append(rest);
    return lines;
  }

  #append(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    this.#partialBytes += bytes.byteLength;
    if (this.#partialBytes > this.#lineBytesMax) {
      throw new QemuError(
        `QMP sent a line longer than ${this.#lineBytesMax} bytes; ` +
          "QEMU's replies are small, so the peer is not a QMP server or is broken",
      );
    }
    this.#partial.push(bytes);
  }

  #take(): string {
    const bytes = Buffer.concat(this.#partial, this.#partialBytes);
    this.#partial = [];
    this.#partialBytes = 0;
    try {
      return this.#decoder.decode(bytes);
    } catch (error) {
      throw new QemuError("QMP sent a line that is not valid UTF-8", { cause: error });
    }
  }
}
