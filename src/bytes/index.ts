/** Public surface of src/bytes: the byte cursor, writer and async source every codec uses. */

export { BufferPool, type BufferPoolStats } from "./buffer-pool.ts";
export { type ByteOrder, ByteReader, latin1Decode } from "./byte-reader.ts";
export { ByteSource } from "./byte-source.ts";
export { ByteWriter, latin1Encode } from "./byte-writer.ts";
