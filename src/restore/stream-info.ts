/** What a restore needs from the checkpoint's recorded stream info, checked before use. */
import type { CheckpointReader } from "../checkpoint/index.ts";
import { InvalidCheckpointError } from "../errors.ts";
import type { RamSectionInfo } from "../qemu/migration/index.ts";

export interface ReplayInfo {
  /** The configuration section, verbatim (empty for machine types that send none). */
  readonly configuration: Uint8Array;
  /** The RAM section's id, instance and version as the saving QEMU numbered them. */
  readonly ram: RamSectionInfo;
  /**
   * The guest ran when it was saved. A non-live save pauses it first, so QEMU's device state
   * says "paused"; the restore then resumes it. Absent in older checkpoints: false.
   */
  readonly guestRunning: boolean;
}

export function replayInfo(reader: CheckpointReader): ReplayInfo {
  const stream = reader.stream();
  const ram = stream.ram;
  const field = (key: string): number => {
    const value =
      typeof ram === "object" && ram !== null && !Array.isArray(ram)
        ? Reflect.get(ram, key)
        : undefined;
    if (!Number.isSafeInteger(value) || (value as number) < 0) {
      throw new InvalidCheckpointError(
        reader.name,
        `its manifest's stream.info.ram.${key} is missing or invalid`,
      );
    }
    return value as number;
  };
  return {
    configuration: stream.configuration,
    ram: {
      sectionId: field("sectionId"),
      instanceId: field("instanceId"),
      versionId: field("versionId"),
    },
    guestRunning: stream.guestRunning === true,
  };
}
