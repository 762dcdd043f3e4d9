/** Where a progress bar is drawn: stderr, or a fake terminal in tests. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressLine {
  /** Units done so far. */
  done: number;
  /** Units in all, when known: then a bar and a percentage are drawn. */
  total?: number;
  /** A few words after the figures (what was found so far, say). */
  detail?: string;
}

/** Redraws at most this often: a terminal that is written to for every chunk slows the run. */
const REDRAW_EVERY_MS = 100;
const BAR_WIDTH = 24;

/**
 * A one-line progress display for a long command (import, verify, recompress, gc,
 * migrate-storage), redrawn in place with a carriage return. Only on a terminal: when stderr is
 * a pipe or a file, or the command prints --json, it draws nothing, so logs and scripts see only
 * the command's own output.
 */
export class Progress {
  readonly #stream: ProgressStream;
  readonly #label: string;
  readonly #enabled: boolean;
  #drawnAt = -Infinity;
  #last: ProgressLine | undefined;
  #width = 0;

  constructor(label: string, options: { stream?: ProgressStream; quiet?: boolean } = {}) {
    this.#stream = options.stream ?? process.stderr;
    this.#label = label;
    this.#enabled = this.#stream.isTTY === true && !options.quiet;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  update(line: ProgressLine): void {
    if (!this.#enabled) return;
    this.#last = line;
    const now = Date.now();
    if (now - this.#drawnAt < REDRAW_EVERY_MS) return;
    this.#drawnAt = now;
    this.#draw(line);
  }

  /** Draws the last state and ends the line, so that what follows starts on a fresh one. */
  finish(): void {
    if (!this.#enabled || !this.#last) return;
    this.#draw(this.#last);
    this.#stream.write('\n');
    this.#last = undefined;
  }

  #draw(line: ProgressLine): void {
    let text = `${this.#label} `;
    if (line.total !== undefined && line.total > 0) {
      const share = Math.min(1, line.done / line.total);
      const filled = Math.round(share * BAR_WIDTH);
      text += `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ${line.done}/${line.total}`;
    } else {
      text += String(line.done);
    }
    if (line.detail) text += ` ${line.detail}`;
    // A pseudo-terminal may report 0 columns: then a usual width.
    const columns = this.#stream.columns || 80;
    if (text.length > columns - 1) text = text.slice(0, columns - 1);
    // Spaces over what a longer previous line left.
    const pad = Math.max(0, this.#width - text.length);
    this.#width = text.length;
    this.#stream.write(`\r${text}${' '.repeat(pad)}`);
  }
}
