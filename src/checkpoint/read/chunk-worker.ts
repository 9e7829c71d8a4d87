/**
 * The body of a chunk worker thread (started by ChunkWorkers, chunk-workers.ts): it reads and
 * decodes pack chunks (or decodes bytes the main thread read: decodeStored), hashes pages and
 * RAM image regions, and compresses chunks for the main thread, one job at a time, so a save or
 * restore spreads its SHA-256 and zstd work over the machine's cores.
 *
 * Invariants: every job is answered exactly once, with its buffer transferred back (the pool
 * reuses it: no allocation per chunk on the main thread); a decode answers `ok` only with bytes
 * that passed the chunk's hash check (chunk-decode.ts, the reader's own code). Pack files are
 * read through file descriptors the main thread opened and keeps open while jobs run.
 */
import { readSync } from "node:fs";
import { createRequire } from "node:module";
import { parentPort } from "node:worker_threads";
import { CHUNK_PAGES_MAX, PAGE_SIZE_BYTES } from "../../limits.ts";
import { assertNever } from "../../util/index.ts";
import { decodePackChunk } from "../format/chunk-decode.ts";
import { PAGE_DIGEST_BYTES, pageDigestsOf } from "../format/chunk-hash.ts";
import { CodecId, zstdCodec } from "../format/codec.ts";
import type {
  ChunkJob,
  ChunkReply,
  CompressJob,
  DecodeJob,
  DecodeStoredJob,
  DigestJob,
  RegionDigestJob,
} from "./chunk-workers.ts";

const CHUNK_BYTES_MAX = CHUNK_PAGES_MAX * PAGE_SIZE_BYTES;
/** Stored bytes of a compressed chunk are read here, then decompressed into the job's buffer. */
const scratch = Buffer.allocUnsafe(CHUNK_BYTES_MAX);
const codecs = new Map<number, ReturnType<typeof zstdCodec>>();

const port = parentPort;
if (port === null) throw new Error("chunk-worker.ts runs as a worker thread (ChunkWorkers)");
port.on("message", (job: ChunkJob) => {
  let reply: ChunkReply;
  try {
    reply = run(job);
  } catch (error) {
    reply = { id: job.id, ok: false, buffer: job.buffer, error: describe(error) };
    if (job.kind === "decodeStored") reply = { ...reply, input: job.stored };
  }
  port.postMessage(reply, reply.input === undefined ? [reply.buffer] : [reply.buffer, reply.input]);
});

function run(job: ChunkJob): ChunkReply {
  switch (job.kind) {
    case "decode":
      return decode(job);
    case "decodeStored":
      return decodeStored(job);
    case "digest":
      return digest(job);
    case "compress":
      return compress(job);
    case "regionDigest":
      return regionDigest(job);
    default:
      return assertNever(job, "chunk job");
  }
}

function decode(job: DecodeJob): ChunkReply {
  const out = new Uint8Array(job.buffer, 0, job.pageCount * PAGE_SIZE_BYTES);
  const raw = job.codec === CodecId.none;
  const into = raw ? out : scratch;
  if (job.storedBytes > into.byteLength) {
    return { id: job.id, ok: false, buffer: job.buffer, error: "stored bytes exceed the chunk" };
  }
  const stored = into.subarray(0, job.storedBytes);
  if (!readFully(job.fd, stored, job.offset))
    return { id: job.id, ok: false, buffer: job.buffer, ended: true };
  // Into the job's buffer (ADR 0028); a raw chunk was read there already.
  const decoded = decodePackChunk(job, stored, out);
  if (!decoded.ok) return { id: job.id, ok: false, buffer: job.buffer, problem: decoded.problem };
  const digests = job.wantDigests ? new Uint8Array(decoded.digests) : null;
  return { id: job.id, ok: true, buffer: job.buffer, digests };
}

/** As decode, from bytes the main thread read (the page server's loader, ADR 0017). */
function decodeStored(job: DecodeStoredJob): ChunkReply {
  const { id, buffer, stored: input } = job;
  const out = new Uint8Array(buffer, 0, job.pageCount * PAGE_SIZE_BYTES);
  if (job.storedBytes > Math.min(input.byteLength, CHUNK_BYTES_MAX)) {
    return { id, ok: false, buffer, error: "stored bytes exceed the chunk", input };
  }
  const decoded = decodePackChunk(job, new Uint8Array(input, 0, job.storedBytes), out);
  if (!decoded.ok) return { id, ok: false, buffer, problem: decoded.problem, input };
  if (decoded.raw.buffer !== out.buffer) out.set(decoded.raw); // stored raw: still in `input`
  return { id, ok: true, buffer, digests: null, input };
}

function digest(job: DigestJob): ChunkReply {
  const pages = new Uint8Array(job.buffer, 0, job.pages * PAGE_SIZE_BYTES);
  const digests = new Uint8Array(pageDigestsOf(pages));
  if (digests.byteLength !== job.pages * PAGE_DIGEST_BYTES) throw new Error("digest count");
  return { id: job.id, ok: true, buffer: job.buffer, digests };
}

function regionDigest(job: RegionDigestJob): ChunkReply {
  const { id, buffer } = job;
  if (job.bytes > buffer.byteLength) throw new Error("the region exceeds the job's buffer");
  const region = new Uint8Array(buffer, 0, job.bytes);
  if (!readFully(job.fd, region, job.offset)) return { id, ok: false, buffer, ended: true };
  return { id, ok: true, buffer, digests: new Uint8Array(blake3Region(region)) };
}

/** Zeros to compare regions with, and the BLAKE3 of zeros by length (it is what it is). */
let zeros = new Uint8Array(0);
const zeroDigests = new Map<number, Buffer>();

function blake3Region(region: Uint8Array): Buffer {
  const blake3 = regionHash();
  if (zeros.byteLength < region.byteLength) zeros = new Uint8Array(region.byteLength);
  if (Buffer.compare(region, zeros.subarray(0, region.byteLength)) !== 0) return blake3(region);
  let digest = zeroDigests.get(region.byteLength);
  if (digest === undefined) {
    digest = blake3(zeros.subarray(0, region.byteLength));
    zeroDigests.set(region.byteLength, digest);
  }
  return digest;
}

/** BLAKE3 from its native addon, loaded by the first region job (ADR 0032). */
let loadedBlake3: ((input: Uint8Array) => Buffer) | null = null;
function regionHash(): (input: Uint8Array) => Buffer {
  if (loadedBlake3 !== null) return loadedBlake3;
  try {
    const addon = createRequire(import.meta.url)("@napi-rs/blake-hash-linux-x64-gnu") as {
      blake3(input: Uint8Array): Buffer;
    };
    loadedBlake3 = addon.blake3;
  } catch (error) {
    throw new Error(
      "Mapped restores hash their RAM image with BLAKE3 from @napi-rs/blake-hash-linux-x64-gnu, " +
        `a Linux x64 (glibc) module, which did not load here (${describe(error)}): reinstall ` +
        "snapwake's dependencies there, or restore with --mode eager",
    );
  }
  return loadedBlake3;
}

/** Compresses the chunk in place: the stored form overwrites the raw bytes when smaller. */
function compress(job: CompressJob): ChunkReply {
  const raw = new Uint8Array(job.buffer, 0, job.rawBytes);
  let codec = codecs.get(job.level);
  if (codec === undefined) {
    codec = zstdCodec(job.level);
    codecs.set(job.level, codec);
  }
  const packed = codec.compress(raw);
  const { id, buffer } = job;
  if (packed.byteLength >= raw.byteLength) {
    const stored = { codec: CodecId.none, bytes: raw.byteLength };
    return { id, ok: true, buffer, digests: null, stored };
  }
  raw.set(packed);
  return {
    id,
    ok: true,
    buffer,
    digests: null,
    stored: { codec: codec.id, bytes: packed.byteLength },
  };
}

/** Fills `into` from `fd` at `offset`; false when the file ends first. */
function readFully(fd: number, into: Uint8Array, offset: number): boolean {
  let done = 0;
  while (done < into.byteLength) {
    const n = readSync(fd, into, done, into.byteLength - done, offset + done);
    if (n === 0) return false;
    done += n;
  }
  return true;
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined ? error.message : `${error.message} (${code})`;
  }
  return String(error);
}
