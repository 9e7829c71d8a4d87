#!/usr/bin/env node
/**
 * The `snapwake` command of the npm package: checks the Node version, then runs the bundled
 * CLI (dist/bundle/main.js, docs/adr/0014). Plain JavaScript that older Nodes parse too, so
 * they get a clear message instead of a syntax error deep in dist/. In a source checkout whose
 * `node` is older, it runs itself on the project's own Node 24 (node_modules/.bin/node, the
 * node devDependency).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const NODE_MAJOR_MIN = 24;

if (Number(process.versions.node.split(".")[0]) < NODE_MAJOR_MIN) {
  const own = fileURLToPath(new URL("../node_modules/.bin/node", import.meta.url));
  if (existsSync(own)) {
    const args = [fileURLToPath(import.meta.url), ...process.argv.slice(2)];
    const run = spawnSync(own, args, { stdio: "inherit" });
    process.exit(run.status ?? 1);
  }
  process.stderr.write(
    `snapwake needs Node.js ${NODE_MAJOR_MIN} or newer, but ${process.execPath} is ` +
      `${process.version}.\nInstall Node.js ${NODE_MAJOR_MIN} (https://nodejs.org/) and run ` +
      "snapwake with it, e.g. put its bin directory first in PATH.\n",
  );
  process.exit(1);
}

await import("../dist/bundle/main.js");
