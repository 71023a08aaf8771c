/**
 * In-process FIFO locks by container name. BullMQ hands a host's jobs to its worker in
 * submission order; holding each job here until every earlier job on the same names is done
 * makes operations on one container run one at a time, in that order, while jobs on other
 * containers go on in parallel.
 */
export class NameLocks {
  private tails = new Map<string, Promise<void>>();
  /** Per name: acquirers waiting for an earlier holder of it (for metrics). */
  private readonly waitingOn = new Map<string, number>();

  /** Waits for every earlier holder of any of `names`, then holds them until `release()`. */
  async acquire(names: readonly string[]): Promise<() => void> {
    const sorted = [...new Set(names)].sort();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const waits: Promise<void>[] = [];
    const blockedBy: string[] = [];
    for (const n of sorted) {
      const prev = this.tails.get(n);
      if (prev) {
        waits.push(prev);
        blockedBy.push(n);
      }
      const tail = mine.then(() => {
        if (this.tails.get(n) === tail) this.tails.delete(n);
      });
      this.tails.set(n, tail);
    }
    if (blockedBy.length > 0) {
      for (const n of blockedBy) this.waitingOn.set(n, (this.waitingOn.get(n) ?? 0) + 1);
      try {
        await Promise.all(waits);
      } finally {
        for (const n of blockedBy) {
          const left = (this.waitingOn.get(n) ?? 1) - 1;
          if (left > 0) this.waitingOn.set(n, left);
          else this.waitingOn.delete(n);
        }
      }
    }
    let released = false;
    return () => {
      if (!released) {
        released = true;
        release();
      }
    };
  }

  /**
   * Holds `names` at once when nobody holds or waits for any of them; null otherwise. For work
   * that must not overlap a job on a container but should not wait for one either (inventory).
   */
  tryAcquire(names: readonly string[]): (() => void) | null {
    if (names.some((n) => this.tails.has(n))) return null;
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    for (const n of new Set(names)) {
      const tail = mine.then(() => {
        if (this.tails.get(n) === tail) this.tails.delete(n);
      });
      this.tails.set(n, tail);
    }
    let released = false;
    return () => {
      if (!released) {
        released = true;
        release();
      }
    };
  }

  isHeld(name: string): boolean {
    return this.tails.has(name);
  }

  /** Names with acquirers waiting behind an earlier holder, and how many wait on each. */
  get waiting(): ReadonlyMap<string, number> {
    return this.waitingOn;
  }

  get held(): number {
    return this.tails.size;
  }
}
