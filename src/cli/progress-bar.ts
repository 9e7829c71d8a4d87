/** A one-line progress bar on a TTY, redrawn at most 10 times a second. */
import type { WriteStream } from "node:tty";
import type { Progress } from "../progress.ts";

const REDRAW_INTERVAL_MS = 100;
const BAR_WIDTH_CHARS = 30;

export class ProgressBar {
  readonly #out: WriteStream;
  #lastDraw = 0;
  #visible = false;

  constructor(out: WriteStream) {
    this.#out = out;
  }

  update(p: Progress): void {
    const now = performance.now();
    if (now - this.#lastDraw < REDRAW_INTERVAL_MS) return;
    this.#lastDraw = now;
    const mib = (p.doneBytes / 2 ** 20).toFixed(0);
    let line = `${p.phase} ${mib} MiB`;
    if (p.totalBytes !== null && p.totalBytes > 0) {
      const ratio = Math.min(1, p.doneBytes / p.totalBytes);
      const filled = Math.round(ratio * BAR_WIDTH_CHARS);
      const bar = `${"#".repeat(filled)}${"-".repeat(BAR_WIDTH_CHARS - filled)}`;
      line = `${p.phase} [${bar}] ${(ratio * 100).toFixed(0)}% of ${(p.totalBytes / 2 ** 20).toFixed(0)} MiB`;
    }
    this.#out.write(`\r\x1b[2K${line}`);
    this.#visible = true;
  }

  clear(): void {
    if (this.#visible) this.#out.write("\r\x1b[2K");
    this.#visible = false;
  }
}
