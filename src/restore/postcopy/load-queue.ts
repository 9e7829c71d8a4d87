/**
 * The chunk loader's queues (chunk-loader.ts, ADR 0017): a load waits to be read, then to be
 * decoded, and each stage takes the oldest load of the highest urgency (a page request, then
 * the prelude, then locality pushes, then the fill).
 */
import type { DecodeInput } from "../../checkpoint/index.ts";
import type { EarlyPages, Urgency } from "./chunk-cache.ts";

/** A chunk's pages as a load gives them, and the stored bytes read for them. */
export type Loaded = { pages: Uint8Array[]; storedBytes: number };

/** One chunk's way through the loader's two stages. */
export interface Load {
  readonly chunk: number;
  readonly job: DecodeInput;
  urgency: Urgency;
  /** Who takes pages checked alone, before the whole chunk is (a page request), if anyone. */
  early: EarlyPages | null;
  /** The stored bytes once read (the read stage's output, the decode stage's input). */
  stored: ArrayBuffer | null;
  readonly resolve: (loaded: Loaded) => void;
  readonly reject: (error: Error) => void;
}

/** Higher goes first. */
export const RANK: Readonly<Record<Urgency, number>> = {
  fill: 0,
  neighbours: 1,
  prelude: 2,
  request: 3,
};

/** Where the oldest load of the highest urgency is in `queue`, or -1 when it is empty. */
function nextAt(queue: readonly Load[]): number {
  let at = -1;
  for (let i = 0; i < queue.length; i++) {
    const load = queue[i] as Load;
    if (at < 0 || RANK[load.urgency] > RANK[(queue[at] as Load).urgency]) at = i;
    if (load.urgency === "request") break;
  }
  return at;
}

/** Removes and returns the oldest load of the highest urgency in `queue`. */
export function takeNext(queue: Load[]): Load | undefined {
  const at = nextAt(queue);
  return at < 0 ? undefined : queue.splice(at, 1)[0];
}

/** As takeNext, but only a load somebody waits for (a request or the prelude). */
export function takeWaitedFor(queue: Load[]): Load | undefined {
  const at = nextAt(queue);
  return at < 0 || queue[at]?.urgency === "fill" ? undefined : queue.splice(at, 1)[0];
}
