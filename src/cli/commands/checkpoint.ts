/** `snapwake save` and `snapwake restore`. */
import { restore } from "../../restore/index.ts";
import { save } from "../../save/index.ts";
import type { Command } from "./index.ts";
import { choice, parse } from "./parse.ts";

const MIB = 2 ** 20;

export const saveCommand: Command = {
  usage: "VM --name CHECKPOINT [--after continue|pause|stop]   checkpoint a running managed VM",
  async run(ctx, args) {
    const p = parse(args, { name: { type: "string" }, after: { type: "string" } }, ["vm"]);
    const vm = p.arg(0);
    const name =
      p.str("name") ?? `${vm}@${new Date().toISOString().replace(/[:]/g, "-").slice(0, 19)}`;
    const after = choice(
      p.str("after"),
      ["continue", "pause", "stop"] as const,
      "continue",
      "after",
    );
    const result = await save({
      home: ctx.home,
      vm,
      name,
      after,
      onProgress: (x) => ctx.progress(x),
    });
    ctx.done();
    const c = result.checkpoint;
    const human = [
      `saved "${c.name}" from VM "${vm}" in ${(result.wallMs / 1000).toFixed(2)} s`,
      `  stream ${(result.streamBytes / MIB).toFixed(1)} MiB from QEMU → ` +
        `checkpoint ${(c.bytes / MIB).toFixed(1)} MiB`,
    ].join("\n");
    ctx.result(result, human);
  },
};

export const restoreCommand: Command = {
  usage: "CHECKPOINT [--name VM] [--mode eager]   restore a checkpoint into a new managed VM",
  async run(ctx, args) {
    const p = parse(args, { name: { type: "string" }, mode: { type: "string" } }, ["checkpoint"]);
    const mode = choice(p.str("mode"), ["eager"] as const, "eager", "mode");
    const vmName = p.str("name");
    const result = await restore({
      home: ctx.home,
      checkpoint: p.arg(0),
      mode,
      ...(vmName === undefined ? {} : { vmName }),
      onProgress: (x) => ctx.progress(x),
    });
    ctx.done();
    const seconds = (result.wallMs / 1000).toFixed(2);
    const human = `restored "${p.arg(0)}" as VM "${result.vm.name}" (${result.mode}) in ${seconds} s`;
    ctx.result(result, human);
  },
};
