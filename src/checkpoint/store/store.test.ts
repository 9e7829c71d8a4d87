import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { test } from "node:test";
import { NotFoundError, UsageError } from "../../errors.ts";
import { PACK_SYNC_AHEAD_BYTES, PAGE_SIZE_BYTES } from "../../limits.ts";
import { MANIFEST_FILE, restoresDir, workingSetsDir } from "../../store/layout.ts";
import { StoreLock } from "../../store/lock.ts";
import { loadWorkingSet, saveWorkingSet, workingSetFromWrites } from "../../wss/index.ts";
import { FileName } from "../format/format.ts";
import { CheckpointReader } from "../read/reader.ts";
import { prng, randomBytes, tempStore, writeSmall } from "../test-support.ts";
import { beginCheckpoint } from "../write/writer.ts";
import type { CheckpointStore } from "./store.ts";
import { CheckpointWriteError, nodeStoreIo, type StoreIo } from "./store-io.ts";

const noStream = { configuration: new Uint8Array(0) };

async function tempEntries(store: CheckpointStore): Promise<string[]> {
  return readdir(store.tempDir).catch(() => []);
}

test("the store layout names the manifest file the format names", () => {
  assert.equal(MANIFEST_FILE, FileName.manifest);
});

test("abort leaves nothing listed and no temp directory", async () => {
  const t = await tempStore();
  try {
    const w = await beginCheckpoint(t.store, { name: "gone", vm: {}, qemu: {}, stream: noStream });
    w.setRamBlocks([{ name: "ram", lengthBytes: 4 * PAGE_SIZE_BYTES }]);
    await w.putPage(0, 1, randomBytes(prng(1), PAGE_SIZE_BYTES));
    assert.equal((await tempEntries(t.store)).length, 1, "the write happens under tmp/");
    await w.abort(new Error("QEMU died"));
    await w.abort(); // idempotent
    assert.deepEqual(await t.store.list(), []);
    assert.deepEqual(await tempEntries(t.store), []);
    await assert.rejects(t.store.stat("gone"), NotFoundError);
  } finally {
    await t.cleanup();
  }
});

test("a name that exists is refused at begin and at commit; the first stays intact", async () => {
  const t = await tempStore();
  try {
    const second = await beginCheckpoint(t.store, {
      name: "small",
      vm: {},
      qemu: {},
      stream: noStream,
    });
    await writeSmall(t.store, "small");
    await assert.rejects(
      beginCheckpoint(t.store, { name: "small", vm: {}, qemu: {}, stream: noStream }),
      UsageError,
    );
    second.setRamBlocks([{ name: "ram", lengthBytes: PAGE_SIZE_BYTES }]);
    second.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
    await assert.rejects(
      second.commit(),
      (e: unknown) => e instanceof UsageError && /exists already/.test(e.message),
    );
    const listed = await t.store.list();
    assert.deepEqual(
      listed.map((l) => l.name),
      ["small"],
    );
    assert.equal(listed[0]?.ramBytes, 18 * PAGE_SIZE_BYTES, "the first checkpoint, not the second");
    assert.deepEqual(await tempEntries(t.store), []);
  } finally {
    await t.cleanup();
  }
});

test("invalid names are a UsageError before any path is built", async () => {
  const t = await tempStore();
  try {
    for (const name of ["", "../x", "a/b", ".hidden", "-x", "a b", "x".repeat(129), "é"]) {
      assert.throws(() => t.store.dirOf(name), UsageError, name);
      await assert.rejects(
        beginCheckpoint(t.store, { name, vm: {}, qemu: {}, stream: noStream }),
        UsageError,
      );
    }
    assert.equal(basename(t.store.dirOf("web-1@boot.2_x")), "web-1@boot.2_x");
  } finally {
    await t.cleanup();
  }
});

/** An io whose files fail with `code` once `budget` bytes were written in total. */
function failingIo(budget: number, code = "ENOSPC", onlyFile?: string): StoreIo {
  let left = budget;
  return {
    async createFile(path) {
      const file = await nodeStoreIo.createFile(path);
      if (onlyFile !== undefined && basename(path) !== onlyFile) return file;
      return {
        write: async (buffer, offset, length, position) => {
          if (length > left) throw Object.assign(new Error(`${code}: simulated`), { code });
          left -= length;
          return file.write(buffer, offset, length, position);
        },
        sync: () => file.sync(),
        close: () => file.close(),
      };
    },
  };
}

/** Feeds random pages until the writer fails; returns the error. */
async function writeUntilFailure(store: CheckpointStore, pages: number): Promise<unknown> {
  const rand = prng(3);
  const w = await beginCheckpoint(store, { name: "doomed", vm: {}, qemu: {}, stream: noStream });
  try {
    w.setRamBlocks([{ name: "ram", lengthBytes: pages * PAGE_SIZE_BYTES }]);
    for (let p = 0; p < pages; p++) await w.putPage(0, p, randomBytes(rand, PAGE_SIZE_BYTES));
    w.setDeviceState({ sections: new Uint8Array(10), vmdescription: null });
    await w.commit();
  } catch (error) {
    await w.abort(error instanceof Error ? error : undefined);
    return error;
  }
  assert.fail("the write should have failed");
}

for (const [what, io] of [
  ["while pages stream in (pack)", failingIo(3 << 20)],
  ["at commit (index file)", failingIo(0, "ENOSPC", "index.bin")],
  ["at commit (manifest)", failingIo(0, "ENOSPC", "manifest")],
  ["with an I/O error (EIO)", failingIo(1 << 20, "EIO")],
] as const) {
  test(`a write failure ${what} lists nothing and leaves the catalogue alone`, async () => {
    const t = await tempStore();
    try {
      await writeSmall(t.store, "small"); // written before the disk "fills"
      const failing = new (t.store.constructor as typeof CheckpointStore)({ home: t.home, io });
      const error = await writeUntilFailure(failing, 64 * 24);
      assert.ok(
        error instanceof CheckpointWriteError,
        `CheckpointWriteError, got ${String(error)}`,
      );
      assert.match(error.message, /^Cannot write checkpoint "doomed": .*nothing was saved$/);
      if (io !== undefined && what.includes("EIO")) assert.equal(error.code, "EIO");
      else assert.match(error.message, /the disk is full/);
      assert.deepEqual(
        (await t.store.list()).map((l) => l.name),
        ["small"],
      );
      assert.deepEqual(await tempEntries(t.store), []);
      const reader = await CheckpointReader.open(t.store, "small");
      await reader.verify();
      await reader.close();
    } finally {
      await t.cleanup();
    }
  });
}

test("an fsync failing in the background while pages stream in fails the write cleanly", async () => {
  let syncs = 0;
  const io: StoreIo = {
    async createFile(path) {
      const file = await nodeStoreIo.createFile(path);
      if (basename(path) !== "chunks.pack") return file;
      return {
        write: (buffer, offset, length, position) => file.write(buffer, offset, length, position),
        sync: async () => {
          syncs += 1;
          throw Object.assign(new Error("EIO: simulated"), { code: "EIO" });
        },
        close: () => file.close(),
      };
    },
  };
  const t = await tempStore(io);
  try {
    // More than PACK_SYNC_AHEAD_BYTES of incompressible pages: a sync starts before the end.
    const pages = Math.ceil((PACK_SYNC_AHEAD_BYTES * 2) / PAGE_SIZE_BYTES);
    const rand = prng(4);
    const w = await beginCheckpoint(t.store, {
      name: "doomed",
      vm: {},
      qemu: {},
      stream: noStream,
    });
    w.setRamBlocks([{ name: "ram", lengthBytes: pages * PAGE_SIZE_BYTES }]);
    let error: unknown = null;
    try {
      for (let p = 0; p < pages; p++) await w.putPage(0, p, randomBytes(rand, PAGE_SIZE_BYTES));
    } catch (thrown) {
      error = thrown;
    }
    await w.abort();
    assert.ok(error instanceof CheckpointWriteError, `putPage fails, got ${String(error)}`);
    assert.equal(error.code, "EIO");
    assert.equal(syncs, 1, "the background sync failed and no later one was tried");
    assert.deepEqual(await t.store.list(), []);
    assert.deepEqual(await tempEntries(t.store), []);
  } finally {
    await t.cleanup();
  }
});

test("a disk that silently corrupts a write is caught by commit's read-back", async () => {
  const lying: StoreIo = {
    async createFile(path) {
      const file = await nodeStoreIo.createFile(path);
      if (basename(path) !== "chunks.pack") return file;
      return {
        write: (buffer, offset, length, position) => {
          const copy = Buffer.from(buffer.subarray(offset, offset + length));
          if (length > 100) copy.writeUInt8(copy.readUInt8(50) ^ 1, 50);
          return file.write(copy, 0, length, position);
        },
        sync: () => file.sync(),
        close: () => file.close(),
      };
    },
  };
  const t = await tempStore(lying);
  try {
    const error = await writeUntilFailure(t.store, 64 * 3);
    assert.ok(error instanceof CheckpointWriteError, `CheckpointWriteError, got ${String(error)}`);
    assert.match(
      error.message,
      /chunk 0 (fails its hash check|does not decompress).*while verifying what was written/,
    );
    assert.deepEqual(await t.store.list(), []);
    assert.deepEqual(await tempEntries(t.store), []);
  } finally {
    await t.cleanup();
  }
});

test("putPage returns a Promise only when both pack buffers are busy, and then waits", async () => {
  let release: () => void = () => undefined;
  let gate = new Promise<void>((r) => (release = r));
  const io: StoreIo = {
    async createFile(path) {
      const file = await nodeStoreIo.createFile(path);
      return {
        write: async (b, o, l, p) => {
          await gate;
          return file.write(b, o, l, p);
        },
        sync: () => file.sync(),
        close: () => file.close(),
      };
    },
  };
  const t = await tempStore(io);
  try {
    const rand = prng(5);
    const w = await beginCheckpoint(t.store, { name: "slow", vm: {}, qemu: {}, stream: noStream });
    w.setRamBlocks([{ name: "ram", lengthBytes: 64 * 16 * PAGE_SIZE_BYTES }]);
    let p = 0;
    let wait: void | Promise<void>;
    do wait = w.putPage(0, p++, randomBytes(rand, PAGE_SIZE_BYTES));
    while (wait === undefined && p < 64 * 16);
    assert.ok(wait instanceof Promise, "backpressure once two buffers are full");
    assert.ok(p <= 64 * 8, `within two 1 MiB buffers of raw chunks (${p} pages)`);
    assert.throws(
      () => w.putPage(0, p, randomBytes(rand, PAGE_SIZE_BYTES)),
      /backpressure Promise settled/,
    );
    release();
    await wait;
    gate = Promise.resolve();
    while (p < 64 * 16) await w.putPage(0, p++, randomBytes(rand, PAGE_SIZE_BYTES));
    w.setDeviceState({ sections: new Uint8Array(1), vmdescription: null });
    await w.commit();
  } finally {
    await t.cleanup();
  }
});

test("cleanTemp removes leftovers of dead processes only", async () => {
  const t = await tempStore();
  try {
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    assert.ok(dead !== undefined);
    await mkdir(join(t.store.tempDir, `${dead}-0123456789abcdef`), { recursive: true });
    await mkdir(join(t.store.tempDir, `${dead}-0123456789abcdee.removing`), { recursive: true });
    await writeFile(join(t.store.tempDir, `${dead}-0123456789abcded.stream`), "spooled");
    await mkdir(join(t.store.tempDir, `${process.pid}-0123456789abcdef`), { recursive: true });
    await writeFile(join(t.store.tempDir, `${process.pid}-0123456789abcdec.stream`), "spooling");
    await mkdir(join(t.store.tempDir, "not-ours"), { recursive: true });
    assert.equal(await t.store.cleanTemp(), 3);
    assert.deepEqual((await tempEntries(t.store)).sort(), [
      `${process.pid}-0123456789abcdec.stream`,
      `${process.pid}-0123456789abcdef`,
      "not-ours",
    ]);
  } finally {
    await t.cleanup();
  }
});

test("remove unlists and deletes; an absent name is NotFoundError", async () => {
  const t = await tempStore();
  try {
    await writeSmall(t.store, "a");
    await writeSmall(t.store, "b");
    await t.store.remove("a");
    assert.deepEqual(
      (await t.store.list()).map((l) => l.name),
      ["b"],
    );
    assert.deepEqual(await tempEntries(t.store), []);
    await assert.rejects(t.store.remove("a"), NotFoundError);
    await assert.rejects(t.store.stat("a"), NotFoundError);
  } finally {
    await t.cleanup();
  }
});

test("rm of a checkpoint a restore reads is refused with a clear message, and so is gc", async () => {
  const t = await tempStore();
  try {
    await writeSmall(t.store, "c@1");
    const reading = await StoreLock.acquire(t.home, {
      command: "restore",
      mode: "shared",
      uses: [{ checkpoint: "c@1", access: "read" }],
    });
    await assert.rejects(t.store.remove("c@1"), /Cannot rm checkpoint "c@1": `restore`/);
    await assert.rejects(t.store.cleanTemp(), /Cannot gc now: `restore`/);
    assert.deepEqual(
      (await t.store.list()).map((c) => c.name),
      ["c@1"],
      "still listed",
    );
    await reading.release();
    await t.store.remove("c@1");
    assert.equal(await t.store.cleanTemp(), 0);
  } finally {
    await t.cleanup();
  }
});

test("rm takes the checkpoint's working sets and restore records; a new one of its name has none", async () => {
  const t = await tempStore();
  try {
    await writeSmall(t.store, "c@1");
    await saveWorkingSet(t.home, "c@1", workingSetFromWrites([{ block: 0, page: 9 }]));
    await mkdir(restoresDir(t.home, "c@1"), { recursive: true });
    await writeFile(join(restoresDir(t.home, "c@1"), "r.json"), "{}");
    await t.store.remove("c@1");
    for (const dir of [workingSetsDir(t.home, "c@1"), restoresDir(t.home, "c@1")])
      assert.equal(await readdir(dir).catch(() => "gone"), "gone", dir);
    await writeSmall(t.store, "c@1");
    assert.equal(await loadWorkingSet(t.home, "c@1"), null);
  } finally {
    await t.cleanup();
  }
});

test("gc removes working sets and restore records of names no checkpoint has", async () => {
  const t = await tempStore();
  try {
    await writeSmall(t.store, "kept");
    for (const dir of [
      workingSetsDir(t.home, "kept"),
      workingSetsDir(t.home, "ghost"),
      restoresDir(t.home, "ghost"),
    ]) {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, "x.json"), "{}");
    }
    assert.equal(await t.store.cleanTemp(), 2);
    assert.deepEqual(await readdir(join(t.home, "wss")), ["kept"]);
    assert.deepEqual(await readdir(join(t.home, "restores")), []);
  } finally {
    await t.cleanup();
  }
});
