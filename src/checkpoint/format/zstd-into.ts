/**
 * zstd decompression into a buffer the caller owns (ADR 0028). node:zlib's one-shot
 * `zstdDecompressSync` returns a fresh Buffer each call, and on the bench hosts, themselves
 * virtual machines, a fresh 256 KiB costs ~64 first-touch page faults of 12–15 µs each: more
 * than the decompression. Into a reused buffer a stored chunk decompresses in 188 µs instead
 * of 367–751 µs (docs/bench.md, "Decompression into reused buffers").
 *
 * node:zlib has no documented call for that, so this drives the engine's native handle with
 * the call zlib's own sync path makes (`handle.writeSync(flush, in, inOff, inLen, out, outOff,
 * outLen)`, the counts left in `_writeState`; Node's lib/zlib.js, processChunkSync). The shape
 * is checked once per thread; without it every call goes through `zstdDecompressSync` and a
 * copy, as before. A unit test fails when the fast path is off, so a Node upgrade that moves
 * the handle shows up in CI instead of as a slower restore.
 *
 * Invariants: `out` gets exactly its length in bytes or the call throws DecodeError; never a
 * byte past `out`; an engine that reported an error is closed and never used again.
 */
import zlib from "node:zlib";
import { DecodeError } from "../../errors.ts";

/** The native handle's calls this module uses (Node 24's ZstdDecompress binding). */
interface NativeHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOffset: number,
    inLength: number,
    out: Uint8Array,
    outOffset: number,
    outLength: number,
  ): void;
  reset(): void;
  close(): void;
  onerror: (message: string, errno: number, code?: string) => void;
}

/** One engine and its handle; `state` is [output bytes left, input bytes left] after a call. */
interface Engine {
  readonly handle: NativeHandle;
  readonly state: Uint32Array;
  error: string | null;
}

const END = zlib.constants.ZSTD_e_end;
/** Where a call checks that the frame holds no more than `out` (one byte is enough). */
const spare = new Uint8Array(1);

let engine: Engine | null = null;
let fastPath: boolean | null = null; // null: not probed yet on this thread

function newEngine(): Engine | null {
  const stream = zlib.createZstdDecompress({ chunkSize: zlib.constants.Z_MIN_CHUNK });
  const { _handle: handle, _writeState: state } = stream as unknown as {
    _handle?: Partial<NativeHandle>;
    _writeState?: unknown;
  };
  const usable =
    handle !== undefined &&
    typeof handle.writeSync === "function" &&
    typeof handle.reset === "function" &&
    typeof handle.close === "function" &&
    state instanceof Uint32Array &&
    state.length >= 2;
  if (!usable) {
    stream.destroy();
    return null;
  }
  const e: Engine = { handle: handle as NativeHandle, state, error: null };
  // Ours, not zlib's (which would destroy the stream and throw later, on the next tick).
  e.handle.onerror = (message) => {
    e.error = message;
  };
  return e;
}

/** Whether this thread decompresses into the caller's buffer (false: through a copy). */
export function zstdIntoIsDirect(): boolean {
  if (fastPath === null) {
    engine = newEngine();
    fastPath = engine !== null;
  }
  return fastPath;
}

/**
 * Decompresses the one zstd frame in `stored` into `out`, which it must fill exactly; returns
 * `out`. Throws DecodeError when the frame is damaged, shorter or longer than `out`.
 */
export function zstdDecompressInto(stored: Uint8Array, out: Uint8Array): Uint8Array {
  if (zstdIntoIsDirect()) engine ??= newEngine(); // a new one after a failure
  const e = engine; // null without the handle
  if (e === null) return viaCopy(stored, out);
  e.handle.writeSync(END, stored, 0, stored.byteLength, out, 0, out.byteLength);
  let inLeft = e.state[1] ?? 0;
  const produced = out.byteLength - (e.state[0] ?? 0);
  let extra = 0;
  if (e.error === null && produced === out.byteLength) {
    // Full: the frame must not hold more (it may still, in the decoder or in the input).
    e.handle.writeSync(END, stored, stored.byteLength - inLeft, inLeft, spare, 0, 1);
    extra = 1 - (e.state[0] ?? 0);
    inLeft = e.state[1] ?? 0;
  }
  const why =
    e.error ??
    (produced !== out.byteLength
      ? `zstd frame holds ${produced} bytes, expected ${out.byteLength}`
      : extra > 0
        ? `zstd frame holds more than ${out.byteLength} bytes`
        : inLeft > 0
          ? `${inLeft} bytes follow the zstd frame`
          : null);
  if (why !== null) {
    engine = null;
    e.handle.close();
    // Where the decoder stopped is known only for bytes after the frame.
    if (e.error !== null) throw new DecodeError(`zstd frame does not decompress: ${why}`, 0);
    throw new DecodeError(why, inLeft > 0 ? stored.byteLength - inLeft : 0);
  }
  e.handle.reset();
  return out;
}

/** The path without the handle: a fresh buffer, then a copy into `out` (exported for tests). */
export function viaCopy(stored: Uint8Array, out: Uint8Array): Uint8Array {
  out.set(zstdDecompressFresh(stored, out.byteLength));
  return out;
}

/**
 * The one zstd frame in `stored`, exactly `rawBytes` long, in a new Buffer (or DecodeError).
 * `chunkSize` holds the whole output and one byte more, so node:zlib neither concatenates
 * 16 KiB pieces nor takes a full chunk for "maybe more" and allocates a second buffer
 * (ADR 0002, "Throughput").
 */
export function zstdDecompressFresh(stored: Uint8Array, rawBytes: number): Buffer {
  let raw: Buffer;
  try {
    raw = zlib.zstdDecompressSync(stored, {
      maxOutputLength: Math.max(rawBytes, 1),
      chunkSize: Math.max(rawBytes + 1, zlib.constants.Z_MIN_CHUNK),
    });
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new DecodeError(`zstd frame does not decompress: ${why}`, 0, { cause: error });
  }
  if (raw.byteLength !== rawBytes) {
    throw new DecodeError(`zstd frame holds ${raw.byteLength} bytes, expected ${rawBytes}`, 0);
  }
  return raw;
}
