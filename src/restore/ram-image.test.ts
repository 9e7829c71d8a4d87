import assert from "node:assert/strict";
import {
  mkdir,
  mkdtemp,
  open,
  rename,
  rm,
  stat,
  truncate,
  utimes,
  writeFile,
} from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { ChunkWorkers } from "../checkpoint/index.ts";
import { RAM_IMAGE_REGION_BYTES } from "../limits.ts";
import {
  checkImage,
  type ImageSums,
  makeRoom,
  openKeptImage,
  ramImagePaths,
  readImageSums,
} from "./ram-image.ts";

const REGION = RAM_IMAGE_REGION_BYTES;
const { blake3 } = createRequire(import.meta.url)("@napi-rs/blake-hash-linux-x64-gnu") as {
  blake3(input: Uint8Array): Buffer;
};
let home = "";
let workers: ChunkWorkers;
before(async () => {
  home = await mkdtemp(join(tmpdir(), "snapwake-ram-image-"));
  workers = ChunkWorkers.start(2);
});
after(async () => {
  await workers.close();
  await rm(home, { recursive: true, force: true });
});

/** An image of two full regions and a short one: zeros, a pattern, zeros with one byte set. */
async function writeImage(name: string): Promise<ImageSums> {
  const bytes = Buffer.alloc(2 * REGION + 8192);
  for (let i = REGION; i < 2 * REGION; i++) bytes[i] = i % 251;
  bytes[2 * REGION + 5] = 1;
  const paths = ramImagePaths(home, name);
  await mkdir(paths.dir, { recursive: true });
  await writeFile(paths.image, bytes);
  const digests = [0, 1, 2].map((r) =>
    blake3(bytes.subarray(r * REGION, Math.min((r + 1) * REGION, bytes.length))).toString("hex"),
  );
  const sums: ImageSums = {
    format: "snapwake-ram-image 1",
    checkpoint: name,
    identity: "a".repeat(64),
    block: "pc.ram",
    lengthBytes: bytes.length,
    regionBytes: REGION,
    blake3: digests,
  };
  await writeFile(paths.sums, JSON.stringify(sums));
  return sums;
}

function keyOf(sums: ImageSums) {
  const { checkpoint, identity, block, lengthBytes } = sums;
  return { checkpoint, identity, block, lengthBytes };
}

/** Opens the kept image of `sums`' key and checks it; returns the check's answer. */
async function check(sums: ImageSums): Promise<string | null> {
  const image = await openKeptImage(home, keyOf(sums));
  assert.ok(image !== null, "the image and its sums are there");
  try {
    return await checkImage(home, image, workers);
  } finally {
    await image.file.close();
  }
}

test("an image whose regions match its sums passes, zero regions included", async () => {
  assert.equal(await check(await writeImage("ok")), null);
});

test("a changed byte, a zero region made non-zero or a cut image fails its check", async () => {
  const sums = await writeImage("bad");
  const { image } = ramImagePaths(home, "bad");
  const file = await open(image, "r+");
  await file.write(Buffer.from([7]), 0, 1, 10); // region 0 was all zeros
  await file.close();
  assert.match((await check(sums)) ?? "", /region 0 of .* does not match/);
  await writeImage("bad");
  await truncate(image, REGION + 4096);
  assert.match((await check(sums)) ?? "", /shorter than/);
});

test("the check reads the inode it opened, not one renamed over it meanwhile", async () => {
  const sums = await writeImage("pinned");
  const opened = await openKeptImage(home, keyOf(sums));
  assert.ok(opened !== null);
  try {
    const { image } = ramImagePaths(home, "pinned");
    await writeFile(`${image}.other`, Buffer.alloc(sums.lengthBytes, 9));
    await rename(`${image}.other`, image);
    assert.equal(await checkImage(home, opened, workers), null, "the opened inode still matches");
    assert.match((await check(sums)) ?? "", /does not match/, "the path's new file does not");
  } finally {
    await opened.file.close();
  }
});

test("sums count only for the exact checkpoint identity, block and length", async () => {
  const sums = await writeImage("key");
  const key = keyOf(sums);
  assert.deepEqual(await readImageSums(home, key), sums);
  assert.equal(await readImageSums(home, { ...key, identity: "b".repeat(64) }), null);
  assert.equal(await readImageSums(home, { ...key, lengthBytes: sums.lengthBytes + 4096 }), null);
  assert.equal(await readImageSums(home, { ...key, checkpoint: "none" }), null);
  await writeFile(ramImagePaths(home, "key").sums, "{torn");
  assert.equal(await readImageSums(home, key), null);
  assert.equal(await openKeptImage(home, key), null);
});

test("room for a new image: the least recently checked images go first, until it fits", async () => {
  const MIB = 2 ** 20;
  const home = join(await mkdtemp(join(tmpdir(), "snapwake-ram-room-")), "home"); // its own
  const names = ["old", "middle", "new"];
  for (const [i, name] of names.entries()) {
    const paths = ramImagePaths(home, name);
    await mkdir(paths.dir, { recursive: true });
    await writeFile(paths.image, Buffer.alloc(MIB, 1)); // 1 MiB allocated
    await writeFile(paths.sums, "{}");
    const used = new Date(Date.UTC(2026, 0, 1 + i));
    await utimes(paths.sums, used, used);
  }
  const key = { checkpoint: "next", identity: "c".repeat(64), block: "pc.ram", lengthBytes: MIB };
  // 3 MiB kept + 1 MiB new against 2.5 MiB: "old" goes (3 MiB left), then "middle" (2 MiB).
  await makeRoom(home, key, 2.5 * MIB);
  for (const name of names) {
    const there = await stat(ramImagePaths(home, name).dir).then(
      () => true,
      () => false,
    );
    assert.equal(there, name === "new", `${name} ${there ? "kept" : "removed"}`);
  }
  await rm(dirname(home), { recursive: true, force: true });
});

test("a region that cannot be read fails the check with why, not as a mismatch", async () => {
  const sums = await writeImage("unread");
  const image = await openKeptImage(home, keyOf(sums));
  assert.ok(image !== null);
  await image.file.close(); // no descriptor any more: every region job fails
  await assert.rejects(checkImage(home, image, workers), /Cannot check .*image: /);
});
