/**
 * Asks the test guest's agent in a managed VM, from the shell (docs/guest.md):
 *
 *   node_modules/.bin/node scripts/guest-agent.ts VM [ping|verify|stats|files]
 *
 * Prints the reply as JSON. The store is $SNAPWAKE_HOME, as for snapwake. The test guest is
 * not part of the product, so asking its agent is a development tool here rather than a
 * snapwake command. Exit codes: 0 answered, 1 failed, 2 usage.
 */
import { AgentClient } from "../guest/index.ts";
import { resolveHome } from "../src/cli/context.ts";
import { openVm } from "../src/vm/index.ts";

const REQUESTS = ["ping", "verify", "stats", "files"] as const;
type Request = (typeof REQUESTS)[number];
const USAGE = `Usage: scripts/guest-agent.ts VM [${REQUESTS.join("|")}]`;
/** `verify` of a large guest under TCG takes seconds. */
const REPLY_TIMEOUT_MS = 30_000;

function isRequest(s: string): s is Request {
  return (REQUESTS as readonly string[]).includes(s);
}

async function ask(agent: AgentClient, request: Request): Promise<unknown> {
  switch (request) {
    case "ping":
      return { latencyMs: await agent.ping() };
    case "verify":
      return agent.verify();
    case "stats":
      return agent.stats();
    case "files":
      return agent.files();
  }
}

async function main(args: readonly string[]): Promise<number> {
  const [name, request = "ping", ...rest] = args;
  if (name === undefined || name.startsWith("-") || !isRequest(request) || rest.length > 0) {
    console.error(USAGE);
    return 2;
  }
  const vm = await openVm(resolveHome(process.env), name);
  vm.qmp.close();
  if (vm.agentSocket === null) {
    console.error(`VM "${name}" has no agent port (its spec says "agent": false)`);
    return 1;
  }
  const agent = await AgentClient.connect(vm.agentSocket, { timeoutMs: REPLY_TIMEOUT_MS });
  try {
    console.log(JSON.stringify(await ask(agent, request)));
    return 0;
  } finally {
    agent.close();
  }
}

process.exitCode = await main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  return 1;
});
