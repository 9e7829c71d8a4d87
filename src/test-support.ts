/**
 * Helpers shared by unit and integration tests (not part of dist/: tsconfig.build.json).
 */
import { setImmediate as nextTurn } from "node:timers/promises";

/**
 * Settles once Node has checked every promise rejected so far for a handler, i.e. once an
 * "unhandledRejection" for any of them has been emitted. This is a condition, not a time:
 * Node makes that check when the microtask queue of the current event-loop turn has drained
 * (a rejection is unhandled when no handler is attached "within a turn of the event loop"),
 * and a setImmediate callback runs only after that. Rejections made later (by I/O still to
 * come) are not covered: wait for that I/O's own event first.
 */
export async function rejectionsChecked(): Promise<void> {
  await nextTurn();
}
