/**
 * `npm run bench`: side-by-side tables of snapwake against QEMU's own save/restore, measured in
 * one run on one booted guest, written as JSON to build/bench/. Sizes are parameters:
 *   npm run bench -- [--memory-mib 1024] [--work-mib 384]
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { formatComparison, runComparison } from "./lib/compare.ts";

const { values } = parseArgs({
  options: {
    "memory-mib": { type: "string", default: "1024" },
    "work-mib": { type: "string", default: "384" },
    out: { type: "string", default: "build/bench" },
  },
});
const memoryMiB = Number(values["memory-mib"]);
const memMiB = Number(values["work-mib"]);
const work = await mkdtemp(join(tmpdir(), "snapwake-bench-"));
try {
  const result = await runComparison({
    home: join(work, "home"),
    workDir: work,
    memoryMiB,
    memMiB,
    log: (line) => console.error(`bench: ${line}`),
  });
  console.log(
    `\nsnapwake vs QEMU's own save/restore (eager), one run\n\n${formatComparison(result)}\n`,
  );
  await mkdir(values.out, { recursive: true });
  const file = join(values.out, "save-restore.json");
  await writeFile(
    file,
    `${JSON.stringify({ at: new Date().toISOString(), ...result }, null, 2)}\n`,
  );
  console.log(`JSON: ${file}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
