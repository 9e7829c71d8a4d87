/**
 * The page requests waiting to be served, oldest first. A FIFO over an array with a moving head
 * (compacted now and then), bounded: QEMU asks once per missing page, so a queue past
 * RESTORE_REQUESTS_QUEUED_MAX means a QEMU that misbehaves, not a busy guest.
 */
import { QemuError } from "../../errors.ts";
import { RESTORE_REQUESTS_QUEUED_MAX } from "../../limits.ts";

export interface PageRequest {
  /** Global page index (Placement). */
  readonly g: number;
  readonly block: number;
  readonly page: number;
  /** When the return path delivered it (the clock of the page server). */
  readonly receivedMs: number;
}

/** Compact once this many served entries sit before the head (and they are the majority). */
const COMPACT_AFTER = 1024;

export class RequestQueue {
  #items: PageRequest[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Appends `r`; false when the queue is full. */
  push(r: PageRequest): boolean {
    if (this.length >= RESTORE_REQUESTS_QUEUED_MAX) return false;
    this.#items.push(r);
    return true;
  }

  /** The oldest request, or undefined when empty. */
  shift(): PageRequest | undefined {
    const r = this.#items[this.#head];
    if (r === undefined) return undefined;
    this.#head += 1;
    if (this.#head > COMPACT_AFTER && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return r;
  }
}

/** A QEMU with too many requests waiting: it misbehaves (see the module doc). */
export function tooManyRequests(): QemuError {
  return new QemuError(`QEMU has over ${RESTORE_REQUESTS_QUEUED_MAX} page requests queued`);
}

/** A request for no page of ours: `why` says which rule it broke. */
export function badRequest(block: string, start: number, length: number, why: string): QemuError {
  return new QemuError(
    `The restoring QEMU requested ${length} bytes at ${start} of RAM block "${block}": ${why}`,
  );
}
