/**
 * A QMP client over a Unix socket: greeting, capability negotiation, commands correlated to
 * their replies by `id`, and an event queue.
 * Invariants: every pending command settles exactly once (reply, timeout or close); after the
 * connection closes, every pending and every later call rejects with the same QemuError cause,
 * which quotes the tail of QEMU's log when the caller named it.
 */
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { QemuError } from "../../errors.ts";
import {
  QMP_COMMAND_TIMEOUT_MS,
  QMP_CONNECT_TIMEOUT_MS,
  QMP_LINE_BYTES_MAX,
} from "../../limits.ts";
import { assertNever } from "../../util/index.ts";
import type {
  Empty,
  MigrationInfo,
  QmpArgs,
  QmpCommandName,
  QmpReturns,
  VersionInfo,
} from "./commands.ts";
import { type QmpEvent, type QmpEventName, QmpEventQueue, type QmpEvents } from "./events.ts";
import { LineSplitter } from "./line-splitter.ts";
import { parseQmpMessage, type QmpMessage } from "./messages.ts";
import { describeQemuLog } from "./qemu-log.ts";
import { connectWithRetry, withTimeout } from "./unix-connect.ts";
import { pollMigration, type WaitForMigrationOptions } from "./wait-for-migration.ts";

/** QEMU answered a command with a QMP error. */
export class QmpCommandError extends QemuError {
  override name = "QmpCommandError";
  readonly command: string;
  /** QMP error class, e.g. "GenericError", "CommandNotFound", "DeviceNotFound". */
  readonly errorClass: string;
  readonly desc: string;
  constructor(command: string, errorClass: string, desc: string) {
    super(`QEMU refused QMP command "${command}": ${desc} (${errorClass})`);
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

export interface QmpConnectOptions {
  /** Deadline for the socket to appear, accept, greet and negotiate. */
  timeoutMs?: number;
  /** QEMU's stderr log; its tail is quoted when the connection closes unexpectedly. */
  logPath?: string;
  /** Stops retrying (e.g. when the QEMU we wait for has exited); rejects with its reason. */
  signal?: AbortSignal;
}

export interface ExecuteOptions {
  timeoutMs?: number;
}

/** Arguments may be left out for commands whose arguments are all optional. */
type ExecuteRest<C extends QmpCommandName> =
  QmpArgs<C> extends Empty
    ? [args?: QmpArgs<C>, options?: ExecuteOptions]
    : Partial<QmpArgs<C>> extends QmpArgs<C>
      ? [args?: QmpArgs<C>, options?: ExecuteOptions]
      : [args: QmpArgs<C>, options?: ExecuteOptions];

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class QmpClient {
  readonly socketPath: string;
  readonly #socket: Socket;
  readonly #logPath: string | undefined;
  readonly #events = new QmpEventQueue();
  readonly #pending = new Map<number, Pending>();
  readonly #greeting = Promise.withResolvers<VersionInfo>();
  readonly #closed = Promise.withResolvers<QemuError>();
  #nextId = 1;
  #closeReason: string | undefined;
  #closedError: QemuError | undefined;
  #version: VersionInfo | undefined;

  private constructor(socket: Socket, socketPath: string, logPath: string | undefined) {
    this.#socket = socket;
    this.socketPath = socketPath;
    this.#logPath = logPath;
    const splitter = new LineSplitter(QMP_LINE_BYTES_MAX);
    socket.on("data", (chunk: Buffer) => {
      try {
        for (const line of splitter.push(chunk)) this.#dispatch(parseQmpMessage(line));
      } catch (error) {
        this.#fail(error instanceof Error ? error.message : String(error));
      }
    });
    socket.on("error", (error) => {
      this.#closeReason ??= `QEMU exited or closed its QMP connection (${error.message})`;
    });
    socket.on("close", () => void this.#onClose());
    this.#greeting.promise.catch(() => undefined); // observed by connect(); never unhandled
  }

  /** Connects to `socketPath`, retrying until it exists or `timeoutMs` passes, and negotiates. */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? QMP_CONNECT_TIMEOUT_MS;
    const deadline = performance.now() + timeoutMs;
    const socket = await connectWithRetry(socketPath, deadline, timeoutMs, options.signal);
    const client = new QmpClient(socket, socketPath, options.logPath);
    try {
      const remainingMs = Math.max(1, deadline - performance.now());
      client.#version = await withTimeout(client.#greeting.promise, remainingMs, () => {
        return new QemuError(
          `QMP socket ${socketPath} sent no greeting within ${timeoutMs} ms. QEMU serves one ` +
            "QMP client at a time: close the other client (another snapwake process?) and retry",
        );
      });
      await client.execute("qmp_capabilities", {}, { timeoutMs: remainingMs });
      return client;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** QEMU's version, from the greeting. */
  get version(): VersionInfo {
    assert(this.#version !== undefined, "connect() sets the version before returning the client");
    return this.#version;
  }

  /** Whether the connection has closed (QEMU exited, or close() was called). */
  isClosed(): boolean {
    return this.#socket.destroyed || this.#closedError !== undefined;
  }

  /** Settles (never rejects) once the connection has closed, with the error calls now get. */
  get closed(): Promise<QemuError> {
    return this.#closed.promise;
  }

  /** Runs `command` and resolves with its typed reply; QMP errors reject with QmpCommandError. */
  execute<C extends QmpCommandName>(command: C, ...rest: ExecuteRest<C>): Promise<QmpReturns<C>> {
    const [args, options] = rest;
    if (this.isClosed()) {
      // Closed, or closing while the close error (which reads QEMU's log) is being built.
      return this.#closed.promise.then((cause) => {
        throw this.#commandClosedError(command, cause);
      });
    }
    const timeoutMs = options?.timeoutMs ?? QMP_COMMAND_TIMEOUT_MS;
    const id = this.#nextId++;
    const request =
      args === undefined || Object.keys(args).length === 0
        ? { execute: command, id }
        : { execute: command, arguments: args, id };
    return new Promise<QmpReturns<C>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        const log = this.#logPath === undefined ? "" : `; see ${this.#logPath}`;
        reject(new QemuError(`QEMU did not answer QMP "${command}" within ${timeoutMs} ms${log}`));
      }, timeoutMs);
      const settle = (value: unknown) => resolve(value as QmpReturns<C>);
      this.#pending.set(id, { command, resolve: settle, reject, timer });
      this.#socket.write(`${JSON.stringify(request)}\n`);
    });
  }

  /**
   * The oldest unconsumed event called `name` that matches `predicate`, or the next to arrive.
   * Events are queued from the moment of connection, so one that came before this call counts.
   */
  waitForEvent<E extends QmpEventName>(
    name: E,
    options: { predicate?: (data: QmpEvents[E]) => boolean; timeoutMs?: number } = {},
  ): Promise<QmpEvent<E>> {
    const predicate = options.predicate ?? (() => true);
    return this.#events.waitFor(name, predicate, options.timeoutMs ?? QMP_COMMAND_TIMEOUT_MS);
  }

  /** Calls `handler` for every later event called `name`. Returns the unsubscribe function. */
  on<E extends QmpEventName>(name: E, handler: (event: QmpEvent<E>) => void): () => void {
    return this.#events.on(name, handler);
  }

  /**
   * Polls query-migrate until `until` holds (default: status "completed") and returns that
   * reply. Rejects with QemuError when the migration fails or is cancelled (quoting QEMU's
   * error-desc), when `timeoutMs` passes, or when QEMU exits. Works on source and destination.
   */
  waitForMigration(options: WaitForMigrationOptions = {}): Promise<MigrationInfo> {
    return pollMigration(() => this.execute("query-migrate"), options);
  }

  /** Removes and returns every queued (not yet awaited) event, oldest first. */
  drainEvents(): QmpEvent[] {
    return this.#events.drain();
  }

  /** Closes the connection; QEMU keeps running. Pending calls reject. */
  close(): void {
    this.#closeReason ??= "snapwake closed the QMP connection";
    this.#socket.destroy();
  }

  #dispatch(message: QmpMessage): void {
    switch (message.kind) {
      case "greeting":
        this.#greeting.resolve(message.version);
        return;
      case "return":
      case "error": {
        // Replies to commands that already timed out carry ids no longer pending: dropped.
        const pending = typeof message.id === "number" ? this.#pending.get(message.id) : undefined;
        if (pending === undefined || typeof message.id !== "number") return;
        this.#pending.delete(message.id);
        clearTimeout(pending.timer);
        if (message.kind === "return") pending.resolve(message.value);
        else pending.reject(new QmpCommandError(pending.command, message.errorClass, message.desc));
        return;
      }
      case "event":
        this.#events.push(message.event);
        return;
      case "other-event":
        return;
      default:
        assertNever(message, "QMP message");
    }
  }

  #fail(reason: string): void {
    this.#closeReason ??= reason;
    this.#socket.destroy();
  }

  async #onClose(): Promise<void> {
    const reason = this.#closeReason ?? "QEMU exited or closed its QMP connection";
    const log = this.#logPath === undefined ? "" : ` ${await describeQemuLog(this.#logPath)}`;
    const error = new QemuError(`${reason} (QMP socket ${this.socketPath}).${log}`);
    this.#closedError = error;
    this.#greeting.reject(error);
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(this.#commandClosedError(pending.command, error));
    }
    this.#pending.clear();
    this.#events.close(error);
    this.#closed.resolve(error);
  }

  #commandClosedError(command: string, cause: QemuError): QemuError {
    return new QemuError(`QMP "${command}" failed: ${cause.message}`, { cause });
  }
}
