/**
 * The one error the agent client throws for operating failures: the socket is missing, the
 * guest did not answer in time, the connection closed, or a reply did not parse. It stays
 * out of src/errors.ts: the test guest is not part of the library. Callers that wait for a
 * guest to boot catch it (waitUntilResponsive does); everything else reports it.
 */
export class GuestAgentError extends Error {
  override name = "GuestAgentError";
  readonly socketPath: string;
  constructor(socketPath: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.socketPath = socketPath;
  }
}
