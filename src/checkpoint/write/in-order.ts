/**
 * InOrder: results that come back out of order (chunk worker jobs) applied in the order their
 * work was started. The writer's two stages use it: PagePlacer places hashed batches in
 * stream order, ChunkPacker appends compressed chunks in chunk order.
 *
 * Invariants: a step is applied only after every earlier step was; after the first failure
 * (a rejected work or a throwing apply) no later step is applied and `failure` holds it; no
 * Promise made here ever rejects, so nothing is left unobserved.
 */
export class InOrder {
  /** The last step added: every step waits for the one before it. */
  #tail: Promise<void> = Promise.resolve();
  /** Steps added and not applied yet, oldest first. */
  readonly #pending: Promise<void>[] = [];
  #failed = false;
  #failure: unknown = null;

  /** Steps added and not applied (or failed) yet. */
  get pending(): number {
    return this.#pending.length;
  }

  get failed(): boolean {
    return this.#failed;
  }

  /** The first failure, once `failed`. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Applies `apply` to what `work` gives, once every earlier step was applied. */
  add<T>(work: Promise<T>, apply: (value: T) => void | Promise<void>): void {
    work.catch(() => undefined); // observed in the chain below
    const step = this.#tail
      .then(() => work)
      .then((value) => (this.#failed ? undefined : apply(value)))
      .catch((error: unknown) => this.fail(error));
    this.#tail = step;
    this.#pending.push(step);
    void step.then(() => this.#pending.shift());
  }

  /** Records a failure that happened beside the steps; the first one is kept. */
  fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#failure = error;
  }

  /** Settles once the oldest pending step was applied or failed (at once with none). */
  oldest(): Promise<void> {
    return this.#pending[0] ?? Promise.resolve();
  }

  /** Settles once every step added so far was applied or failed. */
  settled(): Promise<void> {
    return this.#tail;
  }
}
