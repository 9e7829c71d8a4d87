/**
 * Builds dist/: the compiled JavaScript and .d.ts of the library, src/ without the CLI and
 * tests (tsconfig.build.json), which the package's library entry exports (docs/adr/0008), and
 * dist/bundle/, the CLI bundled by esbuild (its entry, one file per command loaded on demand,
 * and the chunk worker), which bin/snapwake.js runs (docs/adr/0014). Idempotent and fast when
 * nothing changed: a SHA-256 of the inputs (every source file of either, both tsconfigs, this
 * script) is compared with dist/.stamp, which is written last; tsc itself is incremental
 * (dist/.tsbuildinfo). Files whose source is gone or no longer compiled are removed, and the
 * folders they leave empty. --clean starts from an empty dist/ (npm pack).
 * Run: node_modules/.bin/node scripts/build-dist.ts [--clean]
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SRC = path.join(ROOT, "src");
const DIST = path.join(ROOT, "dist");
/** bin/snapwake compares source mtimes with this file's: keep the name in step with it. */
const STAMP = path.join(DIST, ".stamp");
const CONFIGS = ["tsconfig.json", "tsconfig.build.json", "scripts/build-dist.ts"];
/** The bundled CLI; removeOrphans leaves it alone (its files have no source of their own). */
const BUNDLE = path.join(DIST, "bundle");
/**
 * The bundle's entry points. The chunk worker is one because chunk-workers.ts starts it by URL,
 * `./chunk-worker.js` beside its own module: every output file sits in one folder for that.
 */
const BUNDLE_ENTRIES = {
  main: "src/cli/main.ts",
  "chunk-worker": "src/checkpoint/read/chunk-worker.ts",
};
const TSC = path.join(ROOT, "node_modules", "typescript", "bin", "tsc");

/** Sources of dist/: src/**.ts but tests and test data. */
function built(rel: string): boolean {
  const base = path.basename(rel);
  return (
    rel.endsWith(".ts") &&
    !base.endsWith(".test.ts") &&
    !base.startsWith("test-") && // test helpers (test-support*, test-streams, ...)
    !rel.split(path.sep).includes("testdata")
  );
}

/**
 * Sources tsc compiles (tsconfig.build.json's exclude): all but the CLI, which only the bundle
 * holds (the bin runs the bundle; the library imports none of the CLI).
 */
function compiled(rel: string): boolean {
  return rel.split(path.sep)[0] !== "cli";
}

async function sources(): Promise<string[]> {
  const all = await readdir(SRC, { recursive: true });
  return all.filter(built).sort();
}

async function inputsHash(files: readonly string[]): Promise<string> {
  const h = createHash("sha256");
  for (const rel of [...CONFIGS, ...files.map((f) => path.join("src", f))]) {
    h.update(`${rel}\0`);
    h.update(await readFile(path.join(ROOT, rel)));
  }
  return h.digest("hex");
}

/**
 * dist/x.js, x.d.ts whose src/x.ts is no longer compiled (deleted, renamed, or the CLI), and
 * the folders that leaves empty.
 */
async function removeOrphans(files: readonly string[]): Promise<number> {
  const wanted = new Set(files.map((f) => f.replace(/\.ts$/, "")));
  let removed = 0;
  const entries = await readdir(DIST, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    const rel = path.relative(DIST, path.join(e.parentPath, e.name));
    if (!e.isFile() || rel.split(path.sep)[0] === "bundle") continue;
    const stem = rel.match(/^(.*)(\.d\.ts|\.js)$/)?.[1];
    if (stem === undefined || wanted.has(stem)) continue;
    await rm(path.join(DIST, rel));
    removed++;
  }
  const dirs = entries.filter((e) => e.isDirectory()).map((e) => path.join(e.parentPath, e.name));
  for (const dir of dirs.sort().reverse()) {
    if ((await readdir(dir)).length === 0) await rm(dir, { recursive: true });
  }
  return removed;
}

async function main(): Promise<void> {
  const clean = process.argv.includes("--clean");
  if (clean) await rm(DIST, { recursive: true, force: true });
  const files = await sources();
  const hash = await inputsHash(files);
  const stamp = existsSync(STAMP) ? (await readFile(STAMP, "utf8")).trim() : "";
  if (stamp === hash) {
    const now = new Date();
    await utimes(STAMP, now, now); // a checkout that only touched mtimes is still up to date
    return;
  }
  const started = performance.now();
  execFileSync(process.execPath, [TSC, "-p", path.join(ROOT, "tsconfig.build.json")], {
    stdio: "inherit",
  });
  const orphans = await removeOrphans(files.filter(compiled));
  await bundle();
  await writeFile(STAMP, `${hash}\n`);
  const ms = Math.round(performance.now() - started);
  const extra = orphans === 0 ? "" : `, removed ${orphans} stale file(s)`;
  console.error(`build-dist: compiled ${files.length} modules into dist/ in ${ms} ms${extra}`);
}

/**
 * The CLI as a few files instead of ~150 modules: Node's ESM loader costs about 1 ms per module,
 * twice on a lazy restore's path (the command, then its page server). Dynamic imports stay
 * split (`splitting`), so a command still loads only its own code. Class names are kept:
 * errors are told apart by name across the page server's report line.
 */
async function bundle(): Promise<void> {
  await rm(BUNDLE, { recursive: true, force: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: BUNDLE_ENTRIES,
    outdir: BUNDLE,
    entryNames: "[name]",
    chunkNames: "chunk-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node24",
    keepNames: true,
    // A native addon: loaded from node_modules at run time (the RAM image's BLAKE3, ADR 0032).
    external: ["@napi-rs/blake-hash-linux-x64-gnu"],
    logLevel: "warning",
  });
}

await main();
