/**
 * QMP events: their types (after QEMU 7.2's QAPI schema) and the queue that holds them.
 * Invariants: the queue holds at most QMP_EVENTS_QUEUED_MAX events (the oldest is dropped
 * first); an event is consumed by at most one waitFor(); subscribers see every event, queued
 * or not; once the queue is closed every waiter and every later waitFor() rejects.
 */
import { QemuError } from "../../errors.ts";
import { QMP_EVENTS_QUEUED_MAX } from "../../limits.ts";
import type { MigrationStatus } from "./commands.ts";

type NoData = Record<string, never>;

/** Event name → its `data` member. Events not listed here are ignored by the client. */
export interface QmpEvents {
  SHUTDOWN: { guest: boolean; reason: string };
  POWERDOWN: NoData;
  RESET: { guest: boolean; reason: string };
  STOP: NoData;
  RESUME: NoData;
  SUSPEND: NoData;
  WAKEUP: NoData;
  GUEST_PANICKED: { action: string };
  /** Only emitted with the `events` migration capability, except the first `setup`. */
  MIGRATION: { status: MigrationStatus };
  MIGRATION_PASS: { pass: number };
  BLOCK_JOB_COMPLETED: {
    type: string;
    device: string;
    len: number;
    offset: number;
    error?: string;
  };
  BLOCK_JOB_ERROR: { device: string; operation: string; action: string };
  JOB_STATUS_CHANGE: { id: string; status: string };
  RTC_CHANGE: { offset: number };
}

export type QmpEventName = keyof QmpEvents;

export interface QmpEvent<E extends QmpEventName = QmpEventName> {
  name: E;
  data: QmpEvents[E];
  /** QEMU's host clock when it emitted the event, in ms since the Unix epoch. */
  timestampMs: number;
}

const EVENT_NAMES: ReadonlySet<string> = new Set<QmpEventName>([
  "SHUTDOWN",
  "POWERDOWN",
  "RESET",
  "STOP",
  "RESUME",
  "SUSPEND",
  "WAKEUP",
  "GUEST_PANICKED",
  "MIGRATION",
  "MIGRATION_PASS",
  "BLOCK_JOB_COMPLETED",
  "BLOCK_JOB_ERROR",
  "JOB_STATUS_CHANGE",
  "RTC_CHANGE",
]);

export function isQmpEventName(name: string): name is QmpEventName {
  return EVENT_NAMES.has(name);
}

interface Waiter {
  matches: (event: QmpEvent) => boolean;
  resolve: (event: QmpEvent) => void;
  reject: (error: Error) => void;
}

/** Holds QMP events until a caller waits for them; also fans them out to subscribers. */
export class QmpEventQueue {
  readonly #queued: QmpEvent[] = [];
  readonly #waiters = new Set<Waiter>();
  readonly #subscribers = new Set<(event: QmpEvent) => void>();
  #closedError: Error | undefined;
  #dropped = 0;

  /** Events dropped because nobody waited for them before the queue filled up. */
  get dropped(): number {
    return this.#dropped;
  }

  push(event: QmpEvent): void {
    for (const subscriber of this.#subscribers) subscriber(event);
    for (const waiter of this.#waiters) {
      if (!waiter.matches(event)) continue;
      this.#waiters.delete(waiter);
      waiter.resolve(event);
      return;
    }
    if (this.#queued.length >= QMP_EVENTS_QUEUED_MAX) {
      this.#queued.shift();
      this.#dropped++;
    }
    this.#queued.push(event);
  }

  /**
   * The oldest queued event called `name` (and matching `predicate`), or the next one to
   * arrive. The event is consumed. Rejects with QemuError after `timeoutMs` or on close.
   */
  waitFor<E extends QmpEventName>(
    name: E,
    predicate: (data: QmpEvents[E]) => boolean,
    timeoutMs: number,
  ): Promise<QmpEvent<E>> {
    const matches = (event: QmpEvent): event is QmpEvent<E> =>
      event.name === name && predicate(event.data as QmpEvents[E]);
    const index = this.#queued.findIndex(matches);
    const found = this.#queued[index];
    if (found !== undefined && matches(found)) {
      this.#queued.splice(index, 1);
      return Promise.resolve(found);
    }
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    return new Promise<QmpEvent<E>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new QemuError(`QEMU sent no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        matches,
        resolve: (event) => {
          clearTimeout(timer);
          if (matches(event)) resolve(event);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  /** Calls `handler` for every later event called `name`. Returns the unsubscribe function. */
  on<E extends QmpEventName>(name: E, handler: (event: QmpEvent<E>) => void): () => void {
    const subscriber = (event: QmpEvent): void => {
      if (event.name === name) handler(event as QmpEvent<E>);
    };
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /** Removes and returns every queued event, oldest first. */
  drain(): QmpEvent[] {
    return this.#queued.splice(0);
  }

  /** Rejects every waiter, now and later, with `error`. Subscribers stop hearing anything. */
  close(error: Error): void {
    this.#closedError = error;
    this.#subscribers.clear();
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters.clear();
  }
}
