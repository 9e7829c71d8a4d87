/** `snapwake stream inspect FILE`: describe a QEMU migration stream file. */
import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import { NotFoundError } from "../../errors.ts";
import { formatInspection, inspectMigrationStream } from "../../qemu/migration/index.ts";
import type { Run } from "./index.ts";

export const runStreamInspect: Run = async (ctx, p) => {
  const path = p.arg(0);
  await access(path).catch(() => {
    throw new NotFoundError(`No stream file at ${path}`);
  });
  const desc = await inspectMigrationStream(createReadStream(path, { highWaterMark: 1 << 20 }));
  ctx.result(desc, formatInspection(desc));
};
