/**
 * Matches reply lines to requests in flight. The guest answers in order, but the stream
 * may carry stale lines (replies to a previous client, bytes from before a restore), and a
 * request that timed out may still be answered later.
 * Invariants: a reply goes to the first request that it answers, provided every request
 * before it was abandoned (timed out); those are dropped, since in-order replies mean theirs
 * will never come. Anything else is stale and skipped. At most `capacity` entries are held.
 */
import { type AgentReply, type AgentRequest, answers } from "./agent-protocol.ts";

export interface PendingRequest {
  readonly request: AgentRequest;
  /** Set when the caller gave up; the entry stays to absorb its late reply. */
  abandoned: boolean;
}

export class ReplyQueue<P extends PendingRequest> {
  readonly capacity: number;
  #entries: P[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Adds a request in send order; false if the queue is full (nothing added). */
  add(entry: P): boolean {
    if (this.#entries.length >= this.capacity) this.#dropLeadingAbandoned();
    if (this.#entries.length >= this.capacity) return false;
    this.#entries.push(entry);
    return true;
  }

  /**
   * Routes one reply: returns the live entry it answers, "absorbed" if it answered an
   * abandoned one, or "stale" if it answers nothing in flight.
   */
  route(reply: AgentReply): P | "absorbed" | "stale" {
    for (let i = 0; i < this.#entries.length; i++) {
      const entry = this.#entries[i];
      if (entry === undefined) break;
      if (answers(entry.request, reply)) {
        this.#entries.splice(0, i + 1);
        return entry.abandoned ? "absorbed" : entry;
      }
      if (!entry.abandoned) break;
    }
    return "stale";
  }

  /** Removes and returns everything (the connection closed). */
  drain(): P[] {
    const all = this.#entries;
    this.#entries = [];
    return all;
  }

  /** When full, the oldest abandoned entries are the least likely to still be answered. */
  #dropLeadingAbandoned(): void {
    while (this.#entries[0]?.abandoned === true) this.#entries.shift();
  }
}
