/** The test guest: its build outputs, boot parameters, and the host side of its agent. */
export {
  AgentClient,
  type AgentClientOptions,
  type RequestOptions,
  type WaitOptions,
  waitUntilResponsive,
} from "./host/agent-client.ts";
export { GuestAgentError } from "./host/agent-error.ts";
export type {
  FilesResult,
  GuestPhase,
  GuestStats,
  VerifyResult,
  WorkResult,
} from "./host/agent-protocol.ts";
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
} from "./host/artifacts.ts";
export {
  baselineLatency,
  TTR_CONSECUTIVE_PINGS,
  TTR_SLOWDOWN_MAX,
  type TtrResult,
  timeToResponsive,
} from "./host/responsiveness.ts";
