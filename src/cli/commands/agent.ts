/** `snapwake agent VM ping|verify|stats|files`: talk to the test guest's agent. */
import { AgentClient } from "../../guest/index.ts";
import { openVm } from "../../vm/index.ts";
import type { Run } from "./index.ts";
import { choice } from "./parse.ts";

export const runAgent: Run = async (ctx, p) => {
  const request = choice(
    p.arg(1),
    ["ping", "verify", "stats", "files"] as const,
    "ping",
    "REQUEST",
  );
  const vm = await openVm(ctx.home, p.arg(0));
  vm.qmp.close();
  const agent = await AgentClient.connect(vm.agentSocket ?? "", { timeoutMs: 30_000 });
  try {
    const reply =
      request === "ping"
        ? { latencyMs: await agent.ping() }
        : request === "verify"
          ? await agent.verify()
          : request === "stats"
            ? await agent.stats()
            : await agent.files();
    ctx.result(reply, JSON.stringify(reply));
  } finally {
    agent.close();
  }
};
