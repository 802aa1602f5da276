import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from '../log.js';
import type { ApprovalFlow, Flow, PollerFlow } from './flow-schema.js';
import { formatProblem, listFlowFiles, loadFlowFile, type FlowProblem } from './load-flows.js';

const ASSISTANT_MISSING =
  "LARK_ASSISTANT_USER_ID is not set: an approval flow acts on the assistant's tasks at check_node/execute_node, and without it would act on any user's";

/**
 * The flows in force. Files are loaded at start and watched: a changed file is validated and
 * swapped in; an invalid one is logged (file, JSON path, reason) and the last good version of
 * that file stays in force.
 */
export class FlowRegistry {
  private readonly byFile = new Map<string, Flow>();
  private readonly problemsByFile = new Map<string, FlowProblem[]>();
  private watcher: FSWatcher | null = null;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly listeners = new Set<() => void>();
  loaded = false;

  constructor(
    private readonly dir: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly logger: Logger,
    private readonly onLoaded: (flow: Flow) => void = () => undefined,
    /** Whose tasks approval flows act on; an approval flow is refused without it. */
    private readonly assistantUserId?: string,
  ) {}

  async loadAll(): Promise<void> {
    for (const name of await listFlowFiles(this.dir)) await this.reload(name);
    this.loaded = true;
  }

  watch(): void {
    try {
      this.watcher = watch(this.dir, (_event, name) => {
        if (!name || !name.endsWith('.json') || name === 'flow.schema.json') return;
        // Editors write in several steps; wait for the file to settle.
        clearTimeout(this.timers.get(name));
        this.timers.set(
          name,
          setTimeout(() => {
            this.timers.delete(name);
            void this.reload(name);
          }, 100),
        );
      });
    } catch (err) {
      this.logger.warn({ err, dir: this.dir }, 'cannot watch the flows folder; changes need a restart');
    }
  }

  close(): void {
    this.watcher?.close();
    for (const t of this.timers.values()) clearTimeout(t);
  }

  async reload(name: string): Promise<void> {
    const files = await listFlowFiles(this.dir);
    if (!files.includes(name)) {
      this.problemsByFile.delete(name);
      if (this.byFile.delete(name)) {
        this.logger.info({ file: name }, 'flow file removed');
        this.changed();
      }
      return;
    }
    const result = await loadFlowFile(this.dir, name, this.env);
    if (result.ok) {
      const clash = [...this.byFile].find(([file, f]) => file !== name && f.id === result.flow.id);
      if (clash) {
        this.reject(name, [{ file: name, path: 'id', message: `flow id "${result.flow.id}" is already used by ${clash[0]}` }]);
        return;
      }
      if (result.flow.kind === 'approval' && !this.assistantUserId) {
        this.reject(name, [{ file: name, path: 'kind', message: ASSISTANT_MISSING, needsEnv: 'LARK_ASSISTANT_USER_ID' }]);
        return;
      }
      this.byFile.set(name, result.flow);
      this.problemsByFile.delete(name);
      this.logger.info({ file: name, flow: result.flow.id }, 'flow loaded');
      this.onLoaded(result.flow);
      this.changed();
    } else {
      this.reject(name, result.problems);
    }
  }

  private reject(name: string, problems: FlowProblem[]): void {
    this.problemsByFile.set(name, problems);
    const kept = this.byFile.get(name);
    const unset = unsetVariables(problems);
    if (unset && !kept) {
      // Not configured yet (the shipped examples on a fresh clone): not an error. At start main
      // says it once for all such files; later, one line for this file.
      if (this.loaded) this.logger.warn({ file: name, unset }, `flow not loaded until its variables are set: ${name} (${unset.join(', ')})`);
    } else {
      for (const p of problems) this.logger.error({ file: p.file, path: p.path }, `invalid flow: ${formatProblem(p)}`);
    }
    if (kept) this.logger.warn({ file: name, flow: kept.id }, 'keeping the last good version of this flow');
  }

  /** Files not loaded only because variables they use are not set, with those variables. */
  notConfigured(): Array<{ file: string; unset: string[] }> {
    const out: Array<{ file: string; unset: string[] }> = [];
    for (const [file, problems] of this.problemsByFile) {
      const unset = unsetVariables(problems);
      if (unset && !this.byFile.has(file)) out.push({ file, unset });
    }
    return out.sort((a, b) => a.file.localeCompare(b.file));
  }

  all(): Flow[] {
    return [...this.byFile.values()];
  }

  /** Poller flows in force. */
  pollers(): PollerFlow[] {
    return this.all().filter((f): f is PollerFlow => f.kind === 'poller');
  }

  /** Calls `listener` after every change of the flows in force (a file loaded, changed or removed); answers how to stop. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.logger.error({ err }, 'a flow change listener failed');
      }
    }
  }

  byId(id: string): Flow | undefined {
    return this.all().find((f) => f.id === id);
  }

  approvalFlowFor(approvalCode: string): ApprovalFlow | undefined {
    return this.all().find((f): f is ApprovalFlow => f.kind === 'approval' && f.approvalCode === approvalCode);
  }

  /** The flow in force from a file (for an invalid file: its last good version, if any). */
  inForceFrom(file: string): Flow | undefined {
    return this.byFile.get(file);
  }

  problems(): FlowProblem[] {
    return [...this.problemsByFile.values()].flat();
  }

  /** Files refused because an environment variable the service itself needs is not set. */
  refusedFor(variable: string): string[] {
    return this.problems()
      .filter((p) => p.needsEnv === variable)
      .map((p) => p.file);
  }
}

/** The variables a file lacks, when that is all that is wrong with it; otherwise undefined. */
function unsetVariables(problems: FlowProblem[]): string[] | undefined {
  if (!problems.length || !problems.every((p) => p.missingEnv)) return undefined;
  return [...new Set(problems.map((p) => p.missingEnv!))];
}
