import { Fifo } from '../fifo.js';

/** One unit of work: an upstream call of one record. It holds a slot while `run` is pending. */
export interface FairTask {
  /** Who asked for it (the API client): clients take turns. */
  client: string;
  /** The upstream host it calls: at most `perHost` run at once per host. */
  host: string;
  /** The job it belongs to: within a client and host, jobs take turns. */
  group: string;
  run(): Promise<void>;
}

export interface FairQueueLimits {
  /** Tasks running at once, in all. */
  concurrency: number;
  /** Tasks of one client running at once: what a client with a hung upstream can hold. */
  perClient: number;
  /** Tasks calling one host at once. */
  perHost: number;
}

/** client → host → group → tasks. Each Map's insertion order is its turn order: whoever was served goes to the back. */
type Waiting = Map<string, Map<string, Map<string, Fifo<FairTask>>>>;

/**
 * Runs tasks with a fair share of the slots: round-robin between clients with work, then between
 * the hosts and jobs of a client, never more than `perClient` running for one client nor
 * `perHost` for one host. So a client whose upstream hangs holds at most `perClient` slots
 * until its calls reach their deadline, and the others keep theirs.
 */
export class FairQueue {
  private readonly waiting: Waiting = new Map();
  private readonly runningByClient = new Map<string, number>();
  private readonly runningByHost = new Map<string, number>();
  private running = 0;
  private queued = 0;
  private paused = false;
  private idleWaiters: Array<() => void> = [];

  /**
   * `allowed`: how many tasks may hold a slot right now (at most `limits.concurrency`); the
   * worker lowers it while the accept path is under pressure (src/accept-first.ts) and
   * calls wake() when it rises again.
   */
  constructor(
    private readonly limits: FairQueueLimits,
    private readonly onError: (err: unknown, task: FairTask) => void,
    private readonly allowed: () => number = () => limits.concurrency,
  ) {}

  /** Tasks waiting for a slot. */
  get size(): number {
    return this.queued;
  }

  /** Tasks holding a slot. */
  get pending(): number {
    return this.running;
  }

  /** Tasks of one client holding a slot. */
  runningFor(client: string): number {
    return this.runningByClient.get(client) ?? 0;
  }

  add(task: FairTask): void {
    const hosts = getOrSet(this.waiting, task.client, () => new Map<string, Map<string, Fifo<FairTask>>>());
    const groups = getOrSet(hosts, task.host, () => new Map<string, Fifo<FairTask>>());
    getOrSet(groups, task.group, () => new Fifo<FairTask>()).push(task);
    this.queued++;
    this.pump();
  }

  /** No task starts any more; running ones go on. */
  pause(): void {
    this.paused = true;
  }

  /** Drops every waiting task. */
  clear(): void {
    this.waiting.clear();
    this.queued = 0;
  }

  /** Starts waiting tasks up to the slots allowed now: after `allowed` has risen. */
  wake(): void {
    this.pump();
  }

  /** Resolves once no task holds a slot. */
  onIdle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    while (!this.paused && this.running < Math.min(this.limits.concurrency, this.allowed())) {
      const task = this.next();
      if (!task) return;
      this.start(task);
    }
  }

  /** The first task, in turn order, whose client and host both have a free slot; it moves them to the back. */
  private next(): FairTask | undefined {
    for (const [client, hosts] of this.waiting) {
      if ((this.runningByClient.get(client) ?? 0) >= this.limits.perClient) continue;
      for (const [host, groups] of hosts) {
        if ((this.runningByHost.get(host) ?? 0) >= this.limits.perHost) continue;
        const [group, tasks] = groups.entries().next().value!;
        const task = tasks.shift()!;
        this.queued--;
        groups.delete(group);
        if (tasks.length) groups.set(group, tasks);
        hosts.delete(host);
        if (groups.size) hosts.set(host, groups);
        this.waiting.delete(client);
        if (hosts.size) this.waiting.set(client, hosts);
        return task;
      }
    }
    return undefined;
  }

  private start(task: FairTask): void {
    this.running++;
    bump(this.runningByClient, task.client, 1);
    bump(this.runningByHost, task.host, 1);
    let run: Promise<void>;
    try {
      run = task.run();
    } catch (err) {
      run = Promise.reject(err);
    }
    void run
      .catch((err: unknown) => this.onError(err, task))
      .finally(() => {
        this.running--;
        bump(this.runningByClient, task.client, -1);
        bump(this.runningByHost, task.host, -1);
        this.pump();
        if (this.running === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
  }
}

function getOrSet<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/** Adds `by` to a counter, dropping it at zero so idle clients and hosts leave no entry behind. */
function bump(map: Map<string, number>, key: string, by: number): void {
  const value = (map.get(key) ?? 0) + by;
  if (value === 0) map.delete(key);
  else map.set(key, value);
}
