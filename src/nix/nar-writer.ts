/**
 * NAR construction for tests and fixtures. writeNar() yields canonical NARs; NarTokenWriter writes
 * raw tokens so tests can also craft non-canonical ones (unsorted entries, bad padding, ...).
 */
export type NarTree =
  | { type: 'regular'; contents: Uint8Array; executable?: boolean }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, NarTree> };

export const NAR_MAGIC = 'nix-archive-1';

const encoder = new TextEncoder();
const toBytes = (s: string | Uint8Array): Uint8Array => (typeof s === 'string' ? encoder.encode(s) : s);

export class NarTokenWriter {
  private readonly parts: Uint8Array[] = [];
  private size = 0;

  /** Appends bytes verbatim. */
  raw(bytes: Uint8Array): this {
    this.parts.push(bytes);
    this.size += bytes.length;
    return this;
  }

  /** Appends a little-endian u64. */
  u64(n: number | bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
    return this.raw(b);
  }

  /** Appends the padding that follows `length` bytes of payload, filled with `fill`. */
  padding(length: number, fill = 0): this {
    const n = (8 - (length % 8)) % 8;
    return n === 0 ? this : this.raw(new Uint8Array(n).fill(fill));
  }

  /** Appends a string token: length, bytes, padding. */
  str(s: string | Uint8Array, paddingFill = 0): this {
    const bytes = toBytes(s);
    return this.u64(bytes.length).raw(bytes).padding(bytes.length, paddingFill);
  }

  /** Appends several string tokens. */
  strs(...tokens: (string | Uint8Array)[]): this {
    for (const t of tokens) this.str(t);
    return this;
  }

  /** Appends a whole node in canonical form. */
  node(tree: NarTree): this {
    this.strs('(', 'type');
    switch (tree.type) {
      case 'regular':
        this.str('regular');
        if (tree.executable) this.strs('executable', '');
        this.strs('contents', tree.contents);
        break;
      case 'symlink':
        this.strs('symlink', 'target', tree.target);
        break;
      case 'directory':
        this.str('directory');
        for (const [name, child] of sortedEntries(tree.entries)) {
          this.strs('entry', '(', 'name', name, 'node').node(child).str(')');
        }
        break;
    }
    return this.str(')');
  }

  get length(): number {
    return this.size;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.size);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

/** Entries ordered by the raw bytes of their UTF-8 names, as Nix orders them. */
function sortedEntries(entries: Record<string, NarTree>): [Uint8Array, NarTree][] {
  return Object.entries(entries)
    .map(([name, child]): [Uint8Array, NarTree] => [encoder.encode(name), child])
    .sort((a, b) => Buffer.compare(a[0], b[0]));
}

/** The canonical NAR of `tree`. */
export function writeNar(tree: NarTree): Uint8Array {
  return new NarTokenWriter().str(NAR_MAGIC).node(tree).finish();
}
