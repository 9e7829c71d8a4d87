/** `snapwake ls | inspect | rm | gc`: the checkpoint catalogue. */
import {
  CheckpointReader,
  CheckpointStore,
  describeCheckpoint,
  formatCheckpoint,
} from "../../checkpoint/index.ts";
import { removeWorkingSets } from "../../wss/index.ts";
import type { Command } from "./index.ts";
import { parse } from "./parse.ts";

const MIB = 2 ** 20;

export const lsCommand: Command = {
  usage: "   list complete, verified checkpoints",
  async run(ctx, args) {
    parse(args, {}, []);
    const list = await new CheckpointStore({ home: ctx.home }).list();
    const rows = list.map(
      (c) => `${c.name.padEnd(32)} ${(c.bytes / MIB).toFixed(1).padStart(9)} MiB  ${c.createdAt}`,
    );
    ctx.result(
      list,
      list.length === 0
        ? "no checkpoints"
        : [`${"NAME".padEnd(32)} ${"SIZE".padStart(13)}  CREATED`, ...rows].join("\n"),
    );
  },
};

export const inspectCommand: Command = {
  usage: "CHECKPOINT [--verify]   describe a checkpoint (--verify reads and checks every chunk)",
  async run(ctx, args) {
    const p = parse(args, { verify: { type: "boolean" } }, ["checkpoint"]);
    const reader = await CheckpointReader.open(new CheckpointStore({ home: ctx.home }), p.arg(0));
    try {
      const desc = describeCheckpoint(reader);
      const verified = p.flag("verify") ? await reader.verify() : null;
      const human =
        formatCheckpoint(desc) +
        (verified === null ? "" : "\nverify: every chunk and the device state match their hashes");
      ctx.result(verified === null ? desc : { ...desc, verify: verified }, human);
    } finally {
      await reader.close();
    }
  },
};

export const rmCommand: Command = {
  usage: "CHECKPOINT   delete a checkpoint",
  async run(ctx, args) {
    const p = parse(args, {}, ["checkpoint"]);
    await new CheckpointStore({ home: ctx.home }).remove(p.arg(0));
    await removeWorkingSets(ctx.home, p.arg(0));
    ctx.result({ removed: p.arg(0) }, `removed "${p.arg(0)}"`);
  },
};

export const gcCommand: Command = {
  usage: "   remove leftovers of interrupted saves",
  async run(ctx, args) {
    parse(args, {}, []);
    const removed = await new CheckpointStore({ home: ctx.home }).cleanTemp();
    ctx.result({ removedTemp: removed }, `removed ${removed} abandoned temporary item(s)`);
  },
};
