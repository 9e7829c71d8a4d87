/**
 * The `code` of a Node system error ("ENOENT", "EPERM", …), for the callers that handle one
 * condition and rethrow the rest. Anything without a string `code` gives undefined, so a
 * caller's comparison is simply false for errors that are not system errors.
 */
/** `error` as an Error: itself if it is one, else one whose message is its text. */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

export function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  return typeof error.code === "string" ? error.code : undefined;
}
