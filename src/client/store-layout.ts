import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where the bytes of a store path's NAR come from, found by walking the path on disk as
 * `nix-store --dump` does: the NAR's framing (tokens, names, symlink targets, padding), kept
 * here, and each regular file's contents, read from the file when wanted. A NAR range is then
 * read without dumping the path; callers check what they read against a chunk id.
 */
export interface NarLayout {
  size: number;
  /** The framing bytes, in NAR order. */
  literal: Buffer;
  /** Pieces in NAR order: `file` (relative to the store path) or `at` (an offset into `literal`). */
  pieces: { start: number; length: number; file?: string; at?: number }[];
  /** sha256 of the layout (sizes, names, modes, targets): equal fingerprints, an unchanged path. */
  fingerprint: string;
}

/** Paths with more entries than this are not indexed (the framing is held in memory). */
const MAX_ENTRIES = 100_000;
const READ_BYTES = 1 << 20;
/** Files kept open between reads, and how long they stay open unused. */
const OPEN_FILES = 16;
const IDLE_MS = 2000;

/**
 * The layout of `storePath`'s NAR, under `root` (`/` for this machine's store); undefined if
 * unreadable or too big. Walked with synchronous calls: the metadata is local and mostly cached,
 * and a thread-pool round trip per entry cost node's 5467 pieces 0.4 s, against 0.1 s.
 */
export async function narLayout(root: string, storePath: string): Promise<NarLayout | undefined> {
  const literal: Buffer[] = [];
  const pieces: NarLayout['pieces'] = [];
  let literalBytes = 0;
  let size = 0;
  let entries = 0;
  const base = join(root, storePath);
  const token = (bytes: Uint8Array): void => {
    const length = Buffer.alloc(8);
    length.writeUInt32LE(bytes.length % 0x1_0000_0000, 0);
    length.writeUInt32LE(Math.floor(bytes.length / 0x1_0000_0000), 4);
    const padding = (8 - (bytes.length % 8)) % 8;
    addLiteral(Buffer.concat([length, bytes, Buffer.alloc(padding)]));
  };
  const addLiteral = (bytes: Buffer): void => {
    const last = pieces.at(-1);
    if (last && last.file === undefined) last.length += bytes.length;
    else pieces.push({ start: size, length: bytes.length, at: literalBytes });
    literal.push(bytes);
    literalBytes += bytes.length;
    size += bytes.length;
  };
  const text = (...tokens: string[]): void => {
    for (const t of tokens) token(Buffer.from(t));
  };
  const node = (relative: string): boolean => {
    if (++entries > MAX_ENTRIES) return false;
    const path = relative === '' ? base : join(base, relative);
    const st = lstatSync(path);
    text('(', 'type');
    if (st.isSymbolicLink()) {
      text('symlink', 'target');
      token(readlinkSync(path, { encoding: 'buffer' }));
    } else if (st.isFile()) {
      text('regular');
      if (st.mode & 0o100) text('executable', '');
      text('contents');
      const length = Buffer.alloc(8);
      length.writeUInt32LE(st.size % 0x1_0000_0000, 0);
      length.writeUInt32LE(Math.floor(st.size / 0x1_0000_0000), 4);
      addLiteral(length);
      if (st.size > 0) pieces.push({ start: size, length: st.size, file: relative });
      size += st.size;
      const padding = (8 - (st.size % 8)) % 8;
      if (padding > 0) addLiteral(Buffer.alloc(padding));
    } else if (st.isDirectory()) {
      text('directory');
      const names = readdirSync(path, { encoding: 'buffer' }).sort(Buffer.compare);
      for (const name of names) {
        const shown = name.toString('utf8');
        if (!Buffer.from(shown).equals(name)) return false;
        text('entry', '(', 'name');
        token(name);
        text('node');
        if (!node(relative === '' ? shown : `${relative}/${shown}`)) return false;
        text(')');
      }
    } else {
      return false;
    }
    text(')');
    return true;
  };
  try {
    text('nix-archive-1');
    if (!node('')) return undefined;
  } catch {
    return undefined;
  }
  const joined = Buffer.concat(literal);
  const fingerprint = createHash('sha256')
    .update(joined)
    .update(JSON.stringify(pieces.filter((p) => p.file !== undefined).map((p) => [p.file, p.length])))
    .digest('hex');
  return { size, literal: joined, pieces, fingerprint };
}

/** NAR bytes [start, end) of the path, read from its files; throws if a file is shorter than laid out. */
export async function readNarRange(
  root: string,
  storePath: string,
  layout: NarLayout,
  start: number,
  end: number,
  files: OpenFiles = new OpenFiles(),
): Promise<Uint8Array> {
  const out = Buffer.allocUnsafe(end - start);
  let lo = 0;
  let hi = layout.pieces.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (layout.pieces[mid].start <= start) lo = mid;
    else hi = mid - 1;
  }
  for (let i = lo, at = start; at < end; i++) {
    const piece = layout.pieces[i];
    const from = at - piece.start;
    const length = Math.min(piece.length - from, end - at);
    const into = out.subarray(at - start, at - start + length);
    if (piece.file === undefined) {
      layout.literal.copy(into, 0, piece.at! + from, piece.at! + from + length);
    } else {
      await files.read(join(root, storePath, piece.file), from, into);
    }
    at += length;
  }
  return out;
}

/** The whole NAR as a stream, read from the path's files. */
export async function* narBytes(root: string, storePath: string, layout: NarLayout): AsyncGenerator<Uint8Array> {
  const files = new OpenFiles();
  try {
    for (let at = 0; at < layout.size; ) {
      const end = Math.min(layout.size, at + READ_BYTES);
      yield await readNarRange(root, storePath, layout, at, end, files);
      at = end;
    }
  } finally {
    files.closeAll();
  }
}

/**
 * Files open for reading, the last few used kept open (a chunk is often the next piece of the file
 * the last one came from), all closed once unused for a while. Reads are synchronous: a store
 * path's files are local and mostly in the page cache, and the promise API's round trip through
 * the thread pool per small file cost more than the read itself (open, read and close were 0.8 s
 * of CPU for the 5467 pieces of Node.js's NAR).
 */
export class OpenFiles {
  readonly #open = new Map<string, number>();
  #idle: NodeJS.Timeout | undefined;

  /** Fills `into` from `path` at `position`; throws if the file is shorter. */
  async read(path: string, position: number, into: Buffer): Promise<void> {
    clearTimeout(this.#idle);
    try {
      let fd = this.#open.get(path);
      if (fd === undefined) {
        fd = openSync(path, 'r');
        for (const [oldest, old] of this.#open) {
          if (this.#open.size < OPEN_FILES) break;
          this.#open.delete(oldest);
          closeQuietly(old);
        }
      } else {
        this.#open.delete(path);
      }
      this.#open.set(path, fd);
      for (let done = 0; done < into.length; ) {
        const bytesRead = readSync(fd, into, done, into.length - done, position + done);
        if (bytesRead === 0) throw new Error(`${path} is shorter than its NAR says`);
        done += bytesRead;
      }
    } finally {
      this.#idle = setTimeout(() => this.closeAll(), IDLE_MS).unref();
    }
  }

  closeAll(): void {
    for (const fd of this.#open.values()) closeQuietly(fd);
    this.#open.clear();
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closed already.
  }
}
