/**
 * Host side of the test guest's agent: a Unix socket that QEMU connects to the guest's
 * ttyS1 (`-serial unix:<sock>,server=on,wait=off`). One client at a time: QEMU serves a
 * single connection per chardev.
 * Invariants: requests are written in order and matched by ReplyQueue (ping by token);
 * every request settles exactly once, by its reply, its timeout, or the connection closing;
 * a partial line is bounded by AGENT_LINE_BYTES_MAX.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { connectUnix } from "../../src/util/index.ts";
import { GuestAgentError } from "./agent-error.ts";
import {
  type AgentReply,
  type AgentRequest,
  type FilesResult,
  formatRequest,
  type GuestStats,
  parseReply,
  type VerifyResult,
  type WorkResult,
} from "./agent-protocol.ts";
import {
  AGENT_CONNECT_RETRY_MS,
  AGENT_LINE_BYTES_MAX,
  AGENT_PENDING_MAX,
  AGENT_PING_ATTEMPT_MS,
  AGENT_REQUEST_TIMEOUT_MS,
  AGENT_SCRATCH_MIB_MAX,
  AGENT_WAIT_MS_MAX,
  AGENT_WORK_MIB_MAX,
} from "./limits.ts";
import { type PendingRequest, ReplyQueue } from "./reply-queue.ts";

export interface AgentClientOptions {
  /** Default wait for each reply (AGENT_REQUEST_TIMEOUT_MS). */
  timeoutMs?: number;
}

export interface RequestOptions {
  /** Wait for this reply instead of the client's default. */
  timeoutMs?: number;
}

interface Pending extends PendingRequest {
  settle(reply: AgentReply | Error): void;
}

export class AgentClient {
  readonly socketPath: string;
  readonly #socket: net.Socket;
  readonly #timeoutMs: number;
  readonly #queue = new ReplyQueue<Pending>(AGENT_PENDING_MAX);
  readonly #tokenPrefix = randomBytes(4).toString("hex");
  #nextToken = 0;
  #partial = "";
  #discarding = false;
  #closedBy: Error | undefined;
  #staleLines = 0;

  private constructor(socketPath: string, socket: net.Socket, timeoutMs: number) {
    this.socketPath = socketPath;
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    socket.setEncoding("latin1");
    socket.on("data", (text: string) => this.#receive(text));
    socket.on("error", (cause) => this.#fail(`the connection failed (${cause.message})`, cause));
    socket.on("close", () => this.#fail("QEMU closed the connection (VM stopped or restarted?)"));
  }

  /** Connects to the agent socket; the guest need not be booted yet (see waitUntilResponsive). */
  static async connect(socketPath: string, options: AgentClientOptions = {}): Promise<AgentClient> {
    const timeoutMs = options.timeoutMs ?? AGENT_REQUEST_TIMEOUT_MS;
    assert(timeoutMs > 0, "a positive timeout");
    // A Unix-socket connect never stays pending (the kernel completes or refuses it at once:
    // ENOENT, ECONNREFUSED, EAGAIN on a full backlog), so it needs no timeout of its own.
    let socket: net.Socket;
    try {
      socket = await connectUnix(socketPath);
    } catch (cause) {
      const why = cause instanceof Error ? cause.message : String(cause);
      throw new GuestAgentError(
        socketPath,
        `Cannot connect to the guest agent at ${socketPath} (${why}): start QEMU with ` +
          `-serial unix:${socketPath},server=on,wait=off as its second serial port`,
        { cause },
      );
    }
    // Ends any partial line the guest holds from before a restore; the guest ignores empty lines.
    socket.write("\n");
    return new AgentClient(socketPath, socket, timeoutMs);
  }

  /** Round trip to the guest, in ms. */
  async ping(options: RequestOptions = {}): Promise<number> {
    const token = `${this.#tokenPrefix}-${this.#nextToken++}`;
    const start = performance.now();
    await this.#request({ verb: "ping", token }, options);
    return performance.now() - start;
  }

  /** Checks every filled page against its generation (pauses the guest's writer meanwhile). */
  async verify(options: RequestOptions = {}): Promise<VerifyResult> {
    const reply = await this.#request({ verb: "verify" }, options);
    return reply.verb === "verify" ? reply.result : this.#unexpected("verify", reply);
  }

  async stats(options: RequestOptions = {}): Promise<GuestStats> {
    const reply = await this.#request({ verb: "stats" }, options);
    return reply.verb === "stats" ? reply.result : this.#unexpected("stats", reply);
  }

  /**
   * The guest-physical frame of every hot page, in hot-page order (0: not present), read by the
   * guest from its own page tables (/proc/self/pagemap), a reply's worth at a time.
   */
  async hotFrames(options: RequestOptions = {}): Promise<number[]> {
    const frames: number[] = [];
    for (;;) {
      const request = { verb: "hotframes", from: frames.length } as const;
      const reply = await this.#request(request, options);
      if (reply.verb !== "hotframes") return this.#unexpected("hotframes", reply);
      frames.push(...reply.result.pfns);
      if (reply.result.pfns.length === 0 || frames.length >= reply.result.total) return frames;
    }
  }

  /** Re-reads every data-disk file and checks it against MANIFEST. */
  async files(options: RequestOptions = {}): Promise<FilesResult> {
    const reply = await this.#request({ verb: "files" }, options);
    return reply.verb === "files" ? reply.result : this.#unexpected("files", reply);
  }

  /** Reads mib MiB of the guest's workload memory: a fixed burst to time after a restore. */
  async work(mib: number, options: RequestOptions = {}): Promise<WorkResult> {
    if (!Number.isSafeInteger(mib) || mib < 1 || mib > AGENT_WORK_MIB_MAX)
      throw new RangeError(`Cannot ask for work of ${mib} MiB: use 1 to ${AGENT_WORK_MIB_MAX}`);
    const reply = await this.#request({ verb: "work", mib }, options);
    return reply.verb === "work" ? reply.result : this.#unexpected("work", reply);
  }

  /**
   * Makes mib MiB of the guest's free memory dirty: the guest maps them, writes unique bytes
   * and frees them again. What a save must copy unless the guest hints its free pages.
   */
  async scratch(mib: number, options: RequestOptions = {}): Promise<number> {
    if (!Number.isSafeInteger(mib) || mib < 1 || mib > AGENT_SCRATCH_MIB_MAX)
      throw new RangeError(`Cannot scratch ${mib} MiB: use 1 to ${AGENT_SCRATCH_MIB_MAX}`);
    const reply = await this.#request({ verb: "scratch", mib }, options);
    return reply.verb === "scratch" ? reply.done : this.#unexpected("scratch", reply);
  }

  /** Lines received that answered nothing in flight (stale or garbled); for diagnostics. */
  get staleLines(): number {
    return this.#staleLines;
  }

  get closed(): boolean {
    return this.#closedBy !== undefined;
  }

  /** Closes the connection; requests in flight reject. */
  close(): void {
    this.#fail("the client was closed");
    this.#socket.destroy();
  }

  #request(request: AgentRequest, options: RequestOptions): Promise<AgentReply> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const what = `"${formatRequest(request)}"`;
    if (this.#closedBy !== undefined)
      return Promise.reject(this.#error(`Cannot send ${what}: ${this.#closedBy.message}`));
    const { promise, resolve, reject } = Promise.withResolvers<AgentReply>();
    const entry: Pending = {
      request,
      abandoned: false,
      settle(reply) {
        clearTimeout(timer);
        if (reply instanceof Error) reject(reply);
        else resolve(reply);
      },
    };
    const timer = setTimeout(() => {
      entry.abandoned = true;
      reject(
        this.#error(
          `The guest agent did not answer ${what} within ${timeoutMs} ms: is the VM running ` +
            "and booted? Its console log shows swagent's progress",
        ),
      );
    }, timeoutMs);
    if (!this.#queue.add(entry)) {
      clearTimeout(timer);
      return Promise.reject(
        this.#error(`Cannot send ${what}: ${AGENT_PENDING_MAX} requests await replies`),
      );
    }
    this.#socket.write(`${formatRequest(request)}\n`);
    return promise;
  }

  #receive(text: string): void {
    let rest = text;
    for (let nl = rest.indexOf("\n"); nl >= 0; nl = rest.indexOf("\n")) {
      const line = (this.#partial + rest.slice(0, nl)).replaceAll("\r", "");
      rest = rest.slice(nl + 1);
      this.#partial = "";
      if (this.#discarding) this.#discarding = false;
      else this.#line(line);
    }
    this.#partial += rest;
    if (this.#partial.length > AGENT_LINE_BYTES_MAX) {
      this.#partial = "";
      this.#discarding = true;
      this.#staleLines++;
    }
  }

  #line(line: string): void {
    if (line === "") return;
    const reply = parseReply(line);
    const routed = this.#queue.route(reply);
    if (routed === "stale") this.#staleLines++;
    else if (routed !== "absorbed") routed.settle(reply);
  }

  #fail(reason: string, cause?: Error): void {
    if (this.#closedBy !== undefined) return;
    this.#closedBy = new Error(reason, { cause });
    for (const entry of this.#queue.drain())
      if (!entry.abandoned)
        entry.settle(this.#error(`The guest agent request failed: ${reason}`, cause));
  }

  #unexpected(verb: string, reply: AgentReply): never {
    if (reply.verb === "error")
      throw this.#error(`The guest agent refused "${verb}": ${reply.message}`);
    const detail = reply.verb === "invalid" ? `"${reply.line}" (${reply.reason})` : reply.verb;
    throw this.#error(
      `The guest agent sent a malformed "${verb}" reply ${detail}: guest and host disagree`,
    );
  }

  #error(message: string, cause?: Error): GuestAgentError {
    return new GuestAgentError(this.socketPath, message, cause ? { cause } : undefined);
  }
}

export interface WaitOptions extends AgentClientOptions {
  /** Wait per ping before sending another (AGENT_PING_ATTEMPT_MS). */
  pingAttemptMs?: number;
}

/**
 * Connects and pings until the guest answers, for at most budgetMs from now (a duration, not
 * an epoch time). Returns the connected client; the caller closes it. Connecting may fail
 * until QEMU creates the socket, and pings go unanswered until the guest has booted.
 */
export async function waitUntilResponsive(
  socketPath: string,
  budgetMs: number,
  options: WaitOptions = {},
): Promise<AgentClient> {
  assert(budgetMs > 0 && budgetMs <= AGENT_WAIT_MS_MAX, "budgetMs is a duration in ms");
  const end = performance.now() + budgetMs;
  const attemptMs = options.pingAttemptMs ?? AGENT_PING_ATTEMPT_MS;
  let client: AgentClient | undefined;
  let last: unknown;
  for (let left = budgetMs; left > 0; left = end - performance.now()) {
    try {
      client ??= await AgentClient.connect(socketPath, options);
      await client.ping({ timeoutMs: Math.max(1, Math.min(attemptMs, left)) });
      return client;
    } catch (e) {
      if (!(e instanceof GuestAgentError)) throw e;
      last = e;
      if (client?.closed === false) continue;
      client = undefined;
      await sleep(Math.max(0, Math.min(AGENT_CONNECT_RETRY_MS, end - performance.now())));
    }
  }
  client?.close();
  throw new GuestAgentError(
    socketPath,
    `The guest agent at ${socketPath} did not answer a ping within ${budgetMs} ms: check the ` +
      "guest's console log (boot under TCG takes ~5 s; look for 'snapwake-guest: ready')",
    { cause: last },
  );
}
