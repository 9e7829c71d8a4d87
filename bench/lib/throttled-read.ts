/**
 * `node throttled-read.ts FILE MBPS,LATENCY_MS`: writes FILE to stdout as read from the
 * emulated slow store (src/checkpoint/read/read-throttle.ts, the model snapwake's own store reads
 * use under SNAPWAKE_STORE_THROTTLE). The bench hands it to QEMU's own restore as
 * `migrate-incoming "exec:…"`, so QEMU's stream file and snapwake's checkpoint are read under
 * the same limits.
 *
 * The read pattern is a sequential reader's with read-ahead: requests of READ_BYTES, IN_FLIGHT
 * of them outstanding, written out in order (backpressure from QEMU's pipe is respected).
 */
import { open } from "node:fs/promises";
import { parseThrottleLimits, ReadThrottle } from "../../src/checkpoint/read/read-throttle.ts";

/** One request to the store: 1 MiB, a network file system's usual largest read. */
export const READ_BYTES = 1 << 20;
/** Requests outstanding at once: the current one and one read-ahead, as snapwake's own walk. */
export const IN_FLIGHT = 2;

async function main(file: string, limitsText: string): Promise<void> {
  const throttle = new ReadThrottle(parseThrottleLimits(limitsText));
  const handle = await open(file, "r");
  try {
    const size = (await handle.stat()).size;
    const readAt = (offset: number): Promise<Buffer> => {
      const length = Math.min(READ_BYTES, size - offset);
      return throttle.read(length, async () => {
        const buf = Buffer.allocUnsafe(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
          if (bytesRead === 0) throw new Error(`${file} shrank while being read`);
          done += bytesRead;
        }
        return buf;
      });
    };
    const pending: Promise<Buffer>[] = [];
    let next = 0;
    const fill = () => {
      while (pending.length < IN_FLIGHT && next < size) {
        pending.push(readAt(next));
        next += READ_BYTES;
      }
    };
    fill();
    for (let head = pending.shift(); head !== undefined; head = pending.shift()) {
      const buf = await head;
      fill();
      if (!process.stdout.write(buf))
        await new Promise<void>((resolve) => process.stdout.once("drain", () => resolve()));
    }
  } finally {
    await handle.close();
  }
}

const [file, limits] = process.argv.slice(2);
if (file === undefined || limits === undefined) {
  process.stderr.write("usage: throttled-read.ts FILE MBPS,LATENCY_MS\n");
  process.exit(2);
}
await main(file, limits);
