/** The test guest: its build outputs, boot parameters, and the host side of its agent. */
export {
  AgentClient,
  type AgentClientOptions,
  type RequestOptions,
  type WaitOptions,
  waitUntilResponsive,
} from "./agent-client.ts";
export { GuestAgentError } from "./agent-error.ts";
export type {
  FilesResult,
  GuestPhase,
  GuestStats,
  VerifyResult,
  WorkResult,
} from "./agent-protocol.ts";
export {
  DATA_DISK_DEFAULT,
  GUEST_BUILD_DIR,
  GUEST_PARAMS_DEFAULT,
  type GuestArtifacts,
  type GuestInfo,
  type GuestParams,
  type GuestQemuOptions,
  guestArtifacts,
  guestQemuArgs,
  kernelAppend,
  loadGuestInfo,
} from "./artifacts.ts";
export {
  baselineLatency,
  TTR_CONSECUTIVE_PINGS,
  TTR_SLOWDOWN_MAX,
  type TtrResult,
  timeToResponsive,
} from "./responsiveness.ts";
