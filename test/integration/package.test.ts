/**
 * The npm package as a user gets it: `npm pack` of the dist/ that scripts/build-dist.ts keeps
 * fresh, installed with `npm install -g` into a scratch prefix (no devDependencies, offline:
 * the package has no runtime dependencies). Its `snapwake` runs on the project's Node 24, a
 * scratch project imports the library by name, an older Node gets a clear refusal, and the
 * installed CLI (the bundle of docs/adr/0014, its chunk workers included) saves a real guest
 * and restores it eagerly and lazily, the guest verifying every page. Needs npm and QEMU, no
 * network.
 */
import assert from "node:assert/strict";
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { killVm, listVms, openVm } from "../../src/vm/index.ts";
import { bootTestGuest, connectAgent } from "../support/test-guest.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const VERSION: unknown = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
/** PATH with the project's Node 24 first: the installed bin's `#!/usr/bin/env node` finds it. */
const PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ""}`;
/** npm pack and install of a ~530 kB tarball take seconds; a hang must fail, not stall. */
const NPM_TIMEOUT_MS = 120_000;

let tmp = "";
let prefix = "";
let home = "";

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  const r: SpawnSyncReturns<string> = spawnSync(cmd, args, {
    cwd: tmp,
    encoding: "utf8",
    env: { ...process.env, PATH, SNAPWAKE_HOME: home, ...env },
    timeout: NPM_TIMEOUT_MS,
  });
  if (r.error !== undefined) throw r.error;
  return r;
}

function npm(args: readonly string[]): string {
  const r = run("npm", [...args, "--cache", join(tmp, "npm-cache"), "--no-audit", "--no-fund"]);
  assert.equal(r.status, 0, `npm ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

function snapwake(...args: string[]) {
  return run(join(prefix, "bin", "snapwake"), args);
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "snapwake-pkg-"));
  prefix = join(tmp, "prefix");
  home = join(tmp, "home");
  const build = run(process.execPath, [join(ROOT, "scripts", "build-dist.ts")]);
  assert.equal(build.status, 0, `scripts/build-dist.ts failed:\n${build.stderr}`);
  // --ignore-scripts: prepack would rebuild dist/ from scratch; build-dist.ts made it current.
  const packed = JSON.parse(
    npm(["pack", ROOT, "--ignore-scripts", "--pack-destination", tmp, "--json"]),
  ) as { filename: string }[];
  const tarball = join(tmp, packed[0]?.filename ?? "");
  npm(["install", "--global", "--prefix", prefix, "--offline", tarball]);
});

after(async () => {
  for (const vm of await listVms(home)) await killVm(home, vm.name);
  await rm(tmp, { recursive: true, force: true });
});

test("the package holds the compiled code, docs and bin, and no sources, tests or fixtures", () => {
  const pkg = join(prefix, "lib", "node_modules", "snapwake");
  const top = readdirSync(pkg).sort();
  const expected = ["LICENSE", "README.md", "bin", "dist", "docs", "node_modules", "package.json"];
  assert.deepEqual(top, expected);
  // The one bundled dependency: BLAKE3 for mapped restores (ADR 0032), installable offline.
  const bundled = readdirSync(join(pkg, "node_modules"), { recursive: true }).map(String);
  assert.ok(bundled.includes(join("@napi-rs", "blake-hash-linux-x64-gnu", "package.json")));
  assert.ok(
    bundled.every((f) => f.startsWith("@napi-rs")),
    bundled.join(", "),
  );
  const files = readdirSync(join(pkg, "dist"), { recursive: true }).map(String);
  assert.ok(files.includes("index.js") && files.includes("index.d.ts"), "the library");
  assert.ok(files.includes(join("restore", "detached-server.js")), "the library's page server");
  // The bin runs the bundled CLI; its page server starts the chunk worker beside it. tsc's
  // output of the CLI is not shipped: nothing imports it.
  assert.ok(!files.some((f) => f.split("/")[0] === "cli"), "no dist/cli/ beside the bundle");
  assert.ok(files.includes(join("bundle", "main.js")), "the bundled CLI");
  assert.ok(files.includes(join("bundle", "chunk-worker.js")), "the bundle's chunk worker");
  assert.ok(
    !files.some(
      (f) =>
        f.includes(".test.") ||
        f.split("/").some((part) => part.startsWith("test-")) ||
        f.includes("testdata") ||
        (f.endsWith(".ts") && !f.endsWith(".d.ts")),
    ),
  );
});

test("the installed snapwake runs: --version, help, ls", () => {
  const version = snapwake("--version");
  assert.equal(version.status, 0, version.stderr);
  assert.equal(version.stdout.trim(), VERSION);

  const help = snapwake("restore", "--help");
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: snapwake restore CHECKPOINT /);
  assert.match(help.stdout, /--mode eager\|mapped\|lazy\|partial\|auto/);

  const ls = snapwake("ls");
  assert.equal(ls.status, 0, ls.stderr);
  assert.equal(ls.stdout.trim(), "no checkpoints");
  const json = snapwake("ls", "--json");
  assert.deepEqual(JSON.parse(json.stdout), []);
});

test("usage errors exit 2 with the command's usage; a group alone shows its commands", () => {
  const bogus = snapwake("restore", "x", "--bogus");
  assert.equal(bogus.status, 2);
  assert.match(bogus.stderr, /Unknown option '--bogus'[\s\S]*Usage: snapwake restore CHECKPOINT/);
  const missing = snapwake("inspect");
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /expected CHECKPOINT, got none/);
  assert.equal(snapwake("no-such-command").status, 2);
  const vm = snapwake("vm");
  assert.match(vm.stdout, /vm start SPEC\.json[\s\S]*vm ls[\s\S]*vm stop NAME/);
  const notFound = snapwake("inspect", "nothing-here");
  assert.equal(notFound.status, 3, notFound.stderr);
});

test("a scratch project imports the library by name", async () => {
  const project = join(tmp, "project");
  await mkdir(join(project, "node_modules"), { recursive: true });
  await symlink(
    join(prefix, "lib", "node_modules", "snapwake"),
    join(project, "node_modules", "snapwake"),
  );
  await writeFile(join(project, "package.json"), '{ "type": "module" }\n');
  const main = join(project, "main.js");
  await writeFile(
    main,
    'import { save, restore, CheckpointStore } from "snapwake";\n' +
      "const names = await new CheckpointStore({ home: process.env.SNAPWAKE_HOME }).list();\n" +
      "console.log(JSON.stringify([typeof save, typeof restore, names]));\n",
  );
  const r = run(process.execPath, [main]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), ["function", "function", []]);
});

test("a Node older than 24 is told what to install", (t) => {
  const old = ["/usr/bin/node", "/usr/local/bin/node"].find((n) => {
    if (!existsSync(n)) return false;
    const v = spawnSync(n, ["-p", "process.versions.node"], { encoding: "utf8" });
    return Number(v.stdout.split(".")[0]) < 24;
  });
  if (old === undefined) {
    t.skip("no Node older than 24 on this machine to try");
    return;
  }
  const r = run(old, [join(prefix, "bin", "snapwake"), "--version"]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /snapwake needs Node\.js 24 or newer/);
});

test("the installed snapwake saves a real guest and restores it eager, lazy, mapped twice", async () => {
  const params = { memMiB: 64, hotPct: 5, hotRate: 500 };
  const { vm, agent } = await bootTestGuest(home, { name: "pkg", memoryMiB: 256, params });
  agent.close();
  vm.close(); // QEMU serves one QMP client: the CLI's
  const saved = snapwake("save", vm.name, "--name", "pkg@1", "--stop-first", "--after", "stop");
  assert.equal(saved.status, 0, saved.stderr);
  // The second mapped restore checks the kept image: BLAKE3 from the installed addon.
  for (const [i, mode] of ["eager", "lazy", "mapped", "mapped"].entries()) {
    const name = `pkg-${mode}-${i}`;
    const r = snapwake("restore", "pkg@1", "--mode", mode, "--name", name);
    assert.equal(r.status, 0, r.stderr);
    const restored = await openVm(home, name);
    restored.close();
    const guest = await connectAgent(restored);
    try {
      const verify = await guest.verify({ timeoutMs: 120_000 }); // lazy: faults pages in
      assert.equal(verify.bad, 0, `${mode}: no page differs`);
      assert.equal(verify.pages, params.memMiB * 256);
    } finally {
      guest.close();
    }
    assert.equal(snapwake("vm", "stop", name).status, 0);
  }
});
