/**
 * What disk-duplicate references save on a page-cache-heavy guest (Park et al.): the test
 * guest boots from a qcow2 copy of its data disk with little anonymous memory and reads its
 * data files into the page cache; the running VM is saved twice, seconds apart, once
 * storing every page and once with disk references. Reports QEMU's stream bytes, both
 * checkpoints' bytes, and the pages excluded against the data files' pages.
 *
 *   node bench/disk-dedup.ts [--memory 256] [--anon 16]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CheckpointReader, CheckpointStore } from "../src/checkpoint/index.ts";
import { LayerStore } from "../src/disk/index.ts";
import { loadGuestInfo } from "../src/guest/index.ts";
import { PAGE_SIZE_BYTES } from "../src/limits.ts";
import { save } from "../src/save/index.ts";
import { killVm, listVms } from "../src/vm/index.ts";
import { bootTestGuest, makeQcow2DataDisk } from "../test/support/test-guest.ts";

const { values } = parseArgs({ options: { memory: { type: "string" }, anon: { type: "string" } } });
const MIB = 1024 * 1024;
const home = await mkdtemp(join(tmpdir(), "snapwake-dedup-bench-"));
try {
  const disk = join(home, "data.qcow2");
  makeQcow2DataDisk(disk);
  const memoryMiB = Number(values.memory ?? 256);
  const params = { memMiB: Number(values.anon ?? 16), hotPct: 5, hotRate: 200 };
  const { vm, agent } = await bootTestGuest(home, {
    name: "b",
    memoryMiB,
    params,
    qcow2DataDisk: disk,
  });
  await agent.files({ timeoutMs: 120_000 });
  agent.close();
  const plain = await save({ home, vm, name: "plain", diskDuplicates: false });
  const t = performance.now();
  const dedup = await save({ home, vm, name: "dedup" });
  const dedupMs = performance.now() - t;
  await killVm(home, vm);
  const reader = await CheckpointReader.open(new CheckpointStore({ home }), "dedup");
  const s = reader.manifest.statistics;
  const base = reader.manifest.layers.find((l) => l.backing === null);
  await reader.close();
  const diskBlocks = base === undefined ? 0 : (await new LayerStore(home).loadIndex(base)).size;
  const info = await loadGuestInfo();
  const dataPages = info.dataBytes / PAGE_SIZE_BYTES;
  const mib = (b: number) => `${(b / MIB).toFixed(1)} MiB`;
  console.log(
    `guest ${memoryMiB} MiB RAM, ${params.memMiB} MiB anonymous, ${mib(info.dataBytes)} of files cached`,
  );
  console.log(`QEMU stream                 ${mib(dedup.streamBytes)}`);
  console.log(
    `checkpoint, every page      ${mib(plain.checkpoint.bytes)}  (${plain.wallMs.toFixed(0)} ms)`,
  );
  console.log(
    `checkpoint, disk references ${mib(dedup.checkpoint.bytes)}  (${dedupMs.toFixed(0)} ms), ` +
      `${(100 * (1 - dedup.checkpoint.bytes / plain.checkpoint.bytes)).toFixed(1)}% less`,
  );
  console.log(
    `pages as disk references    ${s.pagesDisk} of ${dataPages} data-file pages ` +
      `(${((100 * s.pagesDisk) / dataPages).toFixed(1)}%), ${mib(s.diskRawBytes)} not stored`,
  );
  console.log(`                            of ${diskBlocks} distinct non-zero blocks on the disk`);
  console.log(
    `non-zero pages              ${s.pagesTotal - s.pagesZero} (${s.pagesStored} stored, ${s.pagesDisk} on disk)`,
  );
} finally {
  for (const v of await listVms(home)) await killVm(home, v.name);
  await rm(home, { recursive: true, force: true });
}
