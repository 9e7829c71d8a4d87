/**
 * Host side of the guest agent, no QEMU: reply parsing, request/reply matching, and the
 * client against an in-process fake guest on a Unix socket.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import {
  type AgentRequest,
  answers,
  formatRequest,
  parseReply,
} from "../../guest/host/agent-protocol.ts";
import { type PendingRequest, ReplyQueue } from "../../guest/host/reply-queue.ts";
import { AgentClient, GuestAgentError, waitUntilResponsive } from "../../guest/index.ts";

const STATS_JSON =
  '{"phase":"running","memPages":16384,"hotPages":819,"rewrites":33820,"uptimeMs":17646,' +
  '"filesOk":16,"filesBad":0,"pageCacheBytes":72806400,"sweeps":3}';

test("parseReply reads every reply the guest sends", () => {
  const cases: [string, unknown][] = [
    ["pong abc-1", { verb: "pong", token: "abc-1" }],
    ["pong ", { verb: "pong", token: "" }],
    [
      "verify pages=16384 bad=0 rewrites=33840",
      { verb: "verify", result: { pages: 16384, bad: 0, rewrites: 33840 } },
    ],
    [
      "files ok=16 bad=0 bytes=67108864",
      { verb: "files", result: { ok: 16, bad: 0, bytes: 67108864 } },
    ],
    [
      "work done=16 sum=e91a187e2eb4d5ea",
      { verb: "work", result: { done: 16, sum: "e91a187e2eb4d5ea" } },
    ],
    ["scratch done=256", { verb: "scratch", done: 256 }],
    [
      "hotframes total=3 from=1 pfns=1f,0",
      { verb: "hotframes", result: { total: 3, from: 1, pfns: [31, 0] } },
    ],
    [
      "hotframes total=3 from=3 pfns=",
      { verb: "hotframes", result: { total: 3, from: 3, pfns: [] } },
    ],
    ["error unknown command", { verb: "error", message: "unknown command" }],
  ];
  for (const [line, expected] of cases) assert.deepEqual(parseReply(line), expected, line);
  const stats = parseReply(`stats ${STATS_JSON}`);
  assert.equal(stats.verb, "stats");
  assert.deepEqual(stats.verb === "stats" && stats.result, JSON.parse(STATS_JSON));
});

test("parseReply marks malformed known replies invalid, one case per failure", () => {
  const cases: [string, AgentRequest["verb"]][] = [
    ["verify pages=1 bad=0", "verify"],
    ["verify pages=1 bad=x rewrites=2", "verify"],
    ["verify pages=1 bad=0 rewrites=2 extra=3", "verify"],
    ["verify pages=-1 bad=0 rewrites=2", "verify"],
    ["files ok=1 bad=0 bytes=99999999999999999", "files"],
    ["work done=16 sum=xyz", "work"],
    ["work done=16", "work"],
    ["scratch done=x", "scratch"],
    ["hotframes total=3 from=0 pfns=1f,", "hotframes"],
    ["hotframes total=3 pfns=1f", "hotframes"],
    ["hotframes total=3 from=0 pfns=xyz", "hotframes"],
    ["stats {", "stats"],
    ['stats {"phase":"sleeping"}', "stats"],
    [`stats ${STATS_JSON.replace('"rewrites":33820', '"rewrites":-1')}`, "stats"],
    ["stats []", "stats"],
  ];
  for (const [line, of] of cases) {
    const reply = parseReply(line);
    assert.equal(reply.verb, "invalid", line);
    assert.equal(reply.verb === "invalid" && reply.of, of, line);
  }
});

test("parseReply calls torn or foreign lines noise", () => {
  for (const line of ["=16384 bad=0 rewrites=5", "rites=1", "PONG x", "snapwake-guest: ready"])
    assert.deepEqual(parseReply(line), { verb: "noise", line });
});

test("formatRequest writes the guest's request lines", () => {
  assert.equal(formatRequest({ verb: "ping", token: "t1" }), "ping t1");
  assert.equal(formatRequest({ verb: "verify" }), "verify");
  assert.equal(formatRequest({ verb: "stats" }), "stats");
  assert.equal(formatRequest({ verb: "files" }), "files");
  assert.equal(formatRequest({ verb: "work", mib: 8 }), "work 8");
  assert.equal(formatRequest({ verb: "scratch", mib: 64 }), "scratch 64");
});

test("answers: pongs match by token, errors never answer pings or foreign lines", () => {
  const ping: AgentRequest = { verb: "ping", token: "a-1" };
  assert.equal(answers(ping, parseReply("pong a-1")), true);
  assert.equal(answers(ping, parseReply("pong a-0")), false);
  assert.equal(answers(ping, parseReply("error token longer than 64 bytes")), false);
  const work: AgentRequest = { verb: "work", mib: 1 };
  assert.equal(answers(work, parseReply("error work takes a MiB count in [1, 65536]")), true);
  assert.equal(answers(work, parseReply("error unknown command")), false);
  assert.equal(answers(work, parseReply("error line longer than 256 bytes")), false);
  assert.equal(answers({ verb: "verify" }, parseReply("verify pages=1")), true, "invalid answers");
  assert.equal(answers({ verb: "verify" }, parseReply("stats {}")), false);
});

function pending(request: AgentRequest, abandoned = false): PendingRequest {
  return { request, abandoned };
}

test("ReplyQueue skips stale lines and never lets them settle a live request", () => {
  const q = new ReplyQueue<PendingRequest>(8);
  const verify = pending({ verb: "verify" });
  q.add(verify);
  assert.equal(q.route(parseReply("pong old-token")), "stale");
  assert.equal(q.route(parseReply("files ok=1 bad=0 bytes=1")), "stale");
  assert.equal(q.route(parseReply("verify pages=1 bad=0 rewrites=0")), verify);
  assert.equal(q.size, 0);
  assert.equal(
    q.route(parseReply("verify pages=1 bad=0 rewrites=0")),
    "stale",
    "nothing in flight",
  );
});

test("ReplyQueue absorbs a timed-out request's late reply", () => {
  const q = new ReplyQueue<PendingRequest>(8);
  const late = pending({ verb: "stats" }, true);
  const next = pending({ verb: "stats" });
  q.add(late);
  q.add(next);
  assert.equal(q.route(parseReply(`stats ${STATS_JSON}`)), "absorbed");
  assert.equal(q.route(parseReply(`stats ${STATS_JSON}`)), next);
});

test("ReplyQueue drops timed-out requests once a later request is answered", () => {
  const q = new ReplyQueue<PendingRequest>(8);
  q.add(pending({ verb: "verify" }, true));
  const ping = pending({ verb: "ping", token: "t" });
  q.add(ping);
  assert.equal(q.route(parseReply("pong t")), ping);
  assert.equal(q.size, 0);
});

test("ReplyQueue is bounded, making room only by dropping abandoned entries", () => {
  const q = new ReplyQueue<PendingRequest>(2);
  const first = pending({ verb: "verify" });
  assert.equal(q.add(first), true);
  assert.equal(q.add(pending({ verb: "stats" })), true);
  assert.equal(q.add(pending({ verb: "files" })), false);
  first.abandoned = true;
  assert.equal(q.add(pending({ verb: "files" })), true);
  assert.equal(q.size, 2);
});

/** A fake guest: answers each request line with reply(line), or nothing if it returns null. */
async function fakeGuest(socketPath: string, reply: (line: string) => string | null) {
  const received: string[] = [];
  const connections: net.Socket[] = [];
  const server = net.createServer((conn) => {
    connections.push(conn);
    let partial = "";
    conn.setEncoding("latin1");
    conn.on("data", (text: string) => {
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "") continue;
        received.push(line);
        const out = reply(line);
        if (out !== null) conn.write(`${out}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return { server, received, connections };
}

/** Yields to the event loop until an in-process condition holds (no clock involved). */
async function waitFor(condition: () => boolean): Promise<void> {
  for (let turns = 0; !condition(); turns++) {
    assert.ok(turns < 100_000, "condition met within 100000 event-loop turns");
    await new Promise((r) => setImmediate(r));
  }
}

let dir = "";
let n = 0;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "snapwake-agent-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});
const socketPath = () => path.join(dir, `agent-${n++}.sock`);

test("AgentClient skips stale bytes and answers each method", async () => {
  const sock = socketPath();
  const guest = await fakeGuest(sock, (line) => {
    if (line.startsWith("ping "))
      return `pong stale\nverify pages=9 bad=9 rewrites=9\npong ${line.slice(5)}`;
    if (line === "verify") return "verify pages=16384 bad=0 rewrites=7";
    if (line === "stats") return `stats ${STATS_JSON}`;
    if (line === "files") return "files ok=16 bad=0 bytes=67108864";
    if (line === "work 4") return "work done=4 sum=00000000000000ff";
    if (line === "scratch 8") return "scratch done=8";
    if (line === "hotframes 0") return "hotframes total=3 from=0 pfns=a,b";
    if (line === "hotframes 2") return "hotframes total=3 from=2 pfns=c";
    return "error unknown command";
  });
  const client = await AgentClient.connect(sock, { timeoutMs: 5000 });
  try {
    assert.ok((await client.ping()) >= 0);
    assert.equal(client.staleLines, 2);
    assert.deepEqual(await client.verify(), { pages: 16384, bad: 0, rewrites: 7 });
    assert.equal((await client.stats()).phase, "running");
    assert.deepEqual(await client.files(), { ok: 16, bad: 0, bytes: 67108864 });
    assert.deepEqual(await client.work(4), { done: 4, sum: "00000000000000ff" });
    await assert.rejects(client.work(0), RangeError);
    assert.equal(await client.scratch(8), 8);
    await assert.rejects(client.scratch(16_385), RangeError);
    assert.deepEqual(await client.hotFrames(), [10, 11, 12]);
  } finally {
    client.close();
    guest.server.close();
  }
});

test("AgentClient rejects a request the guest never answers, then recovers", async () => {
  const sock = socketPath();
  let answer = false;
  const guest = await fakeGuest(sock, (line) => (answer ? `pong ${line.slice(5)}` : null));
  const client = await AgentClient.connect(sock, { timeoutMs: 5000 });
  try {
    await assert.rejects(client.ping({ timeoutMs: 20 }), (e) => {
      assert.ok(e instanceof GuestAgentError);
      assert.match(e.message, /did not answer "ping .*" within 20 ms/);
      return true;
    });
    answer = true;
    assert.ok((await client.ping()) >= 0);
  } finally {
    client.close();
    guest.server.close();
  }
});

test("AgentClient rejects requests in flight when QEMU closes the socket", async () => {
  const sock = socketPath();
  const guest = await fakeGuest(sock, () => null);
  const client = await AgentClient.connect(sock);
  const verify = client.verify();
  await waitFor(() => guest.received.includes("verify"));
  for (const conn of guest.connections) conn.destroy();
  guest.server.close();
  await assert.rejects(verify, (e) => {
    assert.ok(e instanceof GuestAgentError);
    assert.match(e.message, /QEMU closed the connection/);
    return true;
  });
  assert.equal(client.closed, true);
  await assert.rejects(client.stats(), /Cannot send "stats"/);
});

test("AgentClient.connect explains a missing socket", async () => {
  await assert.rejects(AgentClient.connect(path.join(dir, "absent.sock")), (e) => {
    assert.ok(e instanceof GuestAgentError);
    assert.match(e.message, /-serial unix:.*absent\.sock,server=on,wait=off/);
    return true;
  });
});

test("waitUntilResponsive waits for the socket to appear and the guest to answer", async () => {
  const sock = socketPath();
  const waiting = waitUntilResponsive(sock, 10_000, { pingAttemptMs: 50 });
  let pings = 0;
  const guest = await fakeGuest(sock, (line) => (++pings >= 3 ? `pong ${line.slice(5)}` : null));
  const client = await waiting;
  try {
    assert.ok(pings >= 3, "early pings went unanswered");
    assert.equal(client.closed, false);
  } finally {
    client.close();
    guest.server.close();
  }
});

test("waitUntilResponsive gives up after its budget with a clear error", async () => {
  await assert.rejects(waitUntilResponsive(path.join(dir, "never.sock"), 50), (e) => {
    assert.ok(e instanceof GuestAgentError);
    assert.match(e.message, /did not answer a ping within 50 ms/);
    return true;
  });
});
