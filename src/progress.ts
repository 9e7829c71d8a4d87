/** Progress reports from long operations (save, restore). The CLI draws them; the library only emits. */
export interface Progress {
  /** What is happening now, e.g. "receiving", "committing", "verifying", "sending". */
  readonly phase: string;
  readonly doneBytes: number;
  /** Unknown when the total cannot be known up front (a live migration may resend pages). */
  readonly totalBytes: number | null;
}

export type ProgressListener = (progress: Progress) => void;
