/**
 * Helpers every layer needs, written once: errors as Errors, system error codes, process liveness, exhaustive
 * switches and Unix-socket connects. The lowest layer: it imports nothing from the project.
 */
export { assertNever } from "./assert-never.ts";
export { connectUnix } from "./connect-unix.ts";
export { asError, errorCode } from "./error-code.ts";
export { processAlive } from "./process-alive.ts";
