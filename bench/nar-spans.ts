/**
 * Where regular files' contents sit inside a NAR, for cut points at file boundaries. Reads NARs
 * as `nix-store --dump` writes them (the dataset's own); anything else is an error.
 */

export interface Span {
  start: number;
  end: number;
}

export function regularFileSpans(nar: Uint8Array): Span[] {
  const view = new DataView(nar.buffer, nar.byteOffset, nar.byteLength);
  const spans: Span[] = [];
  let pos = 0;
  const u64 = (): number => {
    if (pos + 8 > nar.length) throw new Error('NAR truncated');
    const n = Number(view.getBigUint64(pos, true));
    pos += 8;
    return n;
  };
  const skip = (n: number): void => {
    pos += n + ((8 - (n % 8)) % 8);
    if (pos > nar.length) throw new Error('NAR truncated');
  };
  const str = (): string => {
    const n = u64();
    const s = Buffer.from(nar.buffer, nar.byteOffset + pos, n).toString('latin1');
    skip(n);
    return s;
  };
  const expect = (want: string): void => {
    const got = str();
    if (got !== want) throw new Error(`NAR: expected "${want}", found "${got.slice(0, 40)}"`);
  };
  const node = (): void => {
    expect('(');
    expect('type');
    const type = str();
    if (type === 'regular') {
      let tag = str();
      if (tag === 'executable') {
        expect('');
        tag = str();
      }
      if (tag !== 'contents') throw new Error(`NAR: expected "contents", found "${tag}"`);
      const size = u64();
      spans.push({ start: pos, end: pos + size });
      skip(size);
      expect(')');
    } else if (type === 'symlink') {
      expect('target');
      str();
      expect(')');
    } else if (type === 'directory') {
      for (;;) {
        const tag = str();
        if (tag === ')') break;
        if (tag !== 'entry') throw new Error(`NAR: expected "entry", found "${tag}"`);
        expect('(');
        expect('name');
        str();
        expect('node');
        node();
        expect(')');
      }
    } else {
      throw new Error(`NAR: unknown node type "${type}"`);
    }
  };
  expect('nix-archive-1');
  node();
  if (pos !== nar.length) throw new Error('NAR: bytes after the root node');
  return spans;
}
