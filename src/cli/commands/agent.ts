/** `snapwake agent VM ping|verify|stats|files`: talk to the test guest's agent. */
import { AgentClient } from "../../guest/index.ts";
import { openVm } from "../../vm/index.ts";
import type { Command } from "./index.ts";
import { choice, parse } from "./parse.ts";

export const agentCommand: Command = {
  usage: "VM ping|verify|stats|files   ask the test guest's agent (snapwake's own guest)",
  async run(ctx, args) {
    const p = parse(args, {}, ["vm", "request"]);
    const request = choice(
      p.arg(1),
      ["ping", "verify", "stats", "files"] as const,
      "ping",
      "request",
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
  },
};
