/**
 * The end of an exhaustive switch over a discriminated union: the type checker proves it
 * unreachable, so reaching it at run time is our bug (a value from outside the types, such as
 * a corrupt message cast too early), reported with the value.
 */
import { AssertionError } from "node:assert/strict";

/** Throws an AssertionError naming what was being handled (`what`) and the value. */
export function assertNever(value: never, what: string): never {
  throw new AssertionError({
    message: `Cannot handle ${what} ${describe(value)}: not in its type`,
  });
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value); // a bigint or a cycle: the plain form still names it
  }
}
