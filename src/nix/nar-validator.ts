/**
 * Streaming validator of canonical NARs, following Nix's parser (libutil/archive.cc).
 *
 * Accepts exactly what `nix-store --dump` produces: magic, one node, nothing after it; u64 LE
 * lengths; zero padding; fields in Nix's order; directory entries strictly increasing by raw bytes
 * (hence unique); entry names non-empty, not "." or "..", without '/' or NUL. Beyond Nix's parser,
 * which sets no limits, it rejects what no file system can hold and what Nix could not restore:
 * names over 1024 bytes (NAME_MAX is 255 on Linux, at most 1020 UTF-8 bytes on macOS), symlink
 * targets that are empty, contain NUL or exceed 4095 bytes (PATH_MAX - 1), and nesting deeper than
 * 2048 directories (Nix dumps through full paths, which PATH_MAX bounds). These bounds keep memory
 * constant whatever the input. File contents are skipped by counting, never inspected.
 */
import { NarwhalError } from '../errors.ts';

export const NAR_MAX_NAME_LENGTH = 1024;
export const NAR_MAX_TARGET_LENGTH = 4095;
export const NAR_MAX_DEPTH = 2048;

// Lexer states: where the next byte belongs.
const L_LEN = 0; // u64 length prefix
const L_STR = 1; // bytes of a string token
const L_SKIP = 2; // bytes of file contents
const L_PAD = 3; // zero padding after a string or contents

// Grammar states: what the next token must be.
const G_MAGIC = 0;
const G_OPEN = 1; // "(" starting a node
const G_TYPE = 2; // "type"
const G_TYPE_VALUE = 3; // "regular" | "symlink" | "directory"
const G_REG_TAG = 4; // "executable" | "contents"
const G_EXEC_VALUE = 5; // ""
const G_CONTENTS_TAG = 6; // "contents" after the executable marker
const G_CONTENTS = 7; // the contents length, then raw bytes
const G_NODE_CLOSE = 8; // ")" closing a regular or symlink node
const G_TARGET_TAG = 9; // "target"
const G_TARGET = 10; // symlink target string
const G_DIR_ITEM = 11; // "entry" | ")" closing a directory node
const G_ENTRY_OPEN = 12; // "("
const G_NAME_TAG = 13; // "name"
const G_NAME = 14; // entry name
const G_NODE_TAG = 15; // "node"
const G_ENTRY_CLOSE = 16; // ")" closing an entry
const G_DONE = 17;

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const T_MAGIC = enc('nix-archive-1');
const T_OPEN = enc('(');
const T_CLOSE = enc(')');
const T_TYPE = enc('type');
const T_REGULAR = enc('regular');
const T_SYMLINK = enc('symlink');
const T_DIRECTORY = enc('directory');
const T_EXECUTABLE = enc('executable');
const T_CONTENTS = enc('contents');
const T_TARGET = enc('target');
const T_ENTRY = enc('entry');
const T_NAME = enc('name');
const T_NODE = enc('node');

// Longest acceptable string token per grammar state; longer lengths fail before any byte is read.
const MAX_TOKEN = new Int32Array(G_DONE + 1);
MAX_TOKEN[G_MAGIC] = T_MAGIC.length;
MAX_TOKEN[G_OPEN] = 1;
MAX_TOKEN[G_TYPE] = T_TYPE.length;
MAX_TOKEN[G_TYPE_VALUE] = T_DIRECTORY.length;
MAX_TOKEN[G_REG_TAG] = T_EXECUTABLE.length;
MAX_TOKEN[G_EXEC_VALUE] = 0;
MAX_TOKEN[G_CONTENTS_TAG] = T_CONTENTS.length;
MAX_TOKEN[G_NODE_CLOSE] = 1;
MAX_TOKEN[G_TARGET_TAG] = T_TARGET.length;
MAX_TOKEN[G_TARGET] = NAR_MAX_TARGET_LENGTH;
MAX_TOKEN[G_DIR_ITEM] = T_ENTRY.length;
MAX_TOKEN[G_ENTRY_OPEN] = 1;
MAX_TOKEN[G_NAME_TAG] = T_NAME.length;
MAX_TOKEN[G_NAME] = NAR_MAX_NAME_LENGTH;
MAX_TOKEN[G_NODE_TAG] = T_NODE.length;
MAX_TOKEN[G_ENTRY_CLOSE] = 1;

const EXPECTED: string[] = [];
EXPECTED[G_MAGIC] = 'not a NAR (bad magic)';
EXPECTED[G_OPEN] = "expected '('";
EXPECTED[G_TYPE] = "expected 'type'";
EXPECTED[G_TYPE_VALUE] = 'unknown node type';
EXPECTED[G_REG_TAG] = "expected 'executable' or 'contents'";
EXPECTED[G_EXEC_VALUE] = 'executable marker has a non-empty value';
EXPECTED[G_CONTENTS_TAG] = "expected 'contents'";
EXPECTED[G_NODE_CLOSE] = "expected ')' closing the node";
EXPECTED[G_TARGET_TAG] = "expected 'target'";
EXPECTED[G_TARGET] = `symlink target longer than ${NAR_MAX_TARGET_LENGTH} bytes`;
EXPECTED[G_DIR_ITEM] = "expected 'entry' or ')'";
EXPECTED[G_ENTRY_OPEN] = "expected '(' opening an entry";
EXPECTED[G_NAME_TAG] = "expected 'name'";
EXPECTED[G_NAME] = `entry name longer than ${NAR_MAX_NAME_LENGTH} bytes`;
EXPECTED[G_NODE_TAG] = "expected 'node'";
EXPECTED[G_ENTRY_CLOSE] = "expected ')' closing the entry";

const TWO_32 = 0x1_0000_0000;
const MAX_SAFE_HIGH = 0x1f_ffff; // high word of Number.MAX_SAFE_INTEGER

export class NarValidator {
  /** Bytes consumed so far. */
  bytesSeen = 0;
  files = 0;
  directories = 0;
  symlinks = 0;
  /** Sum of regular file sizes. */
  contentBytes = 0;

  private lexer = L_LEN;
  private grammar = G_MAGIC;
  private failure: NarwhalError | undefined;
  private tokenStart = 0;

  private readonly lenBuf = new Uint8Array(8);
  private lenHave = 0;

  private readonly tok = new Uint8Array(NAR_MAX_TARGET_LENGTH + 1);
  private tokLen = 0;
  private tokWant = 0;

  private remaining = 0; // contents bytes left to skip
  private padLeft = 0;

  private depth = 0; // open directories
  private readonly prevNames: Uint8Array[] = [];
  private readonly prevLens: number[] = [];

  /** True once the root node is closed and its padding read. */
  get done(): boolean {
    return this.failure === undefined && this.grammar === G_DONE && this.lexer === L_LEN && this.lenHave === 0;
  }

  push(data: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    try {
      this.consume(data);
    } catch (err) {
      if (err instanceof NarwhalError) this.failure = err;
      throw err;
    }
  }

  /** Declares the end of the stream; throws if the NAR is incomplete. */
  end(): void {
    if (this.failure !== undefined) throw this.failure;
    if (!this.done) {
      this.failure = new NarwhalError('bad-nar', `NAR is truncated after ${this.bytesSeen} bytes`);
      throw this.failure;
    }
  }

  private fail(message: string, at = this.tokenStart): never {
    throw new NarwhalError('bad-nar', `invalid NAR at byte ${at}: ${message}`);
  }

  private consume(data: Uint8Array): void {
    const end = data.length;
    let pos = 0;
    while (pos < end) {
      switch (this.lexer) {
        case L_LEN: {
          if (this.grammar === G_DONE) this.fail('trailing data after the NAR', this.bytesSeen + pos);
          let len: number;
          if (this.lenHave === 0 && end - pos >= 8) {
            this.tokenStart = this.bytesSeen + pos;
            const lo = (data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16)) + data[pos + 3] * 0x100_0000;
            const hi = (data[pos + 4] | (data[pos + 5] << 8) | (data[pos + 6] << 16)) + data[pos + 7] * 0x100_0000;
            pos += 8;
            if (hi > MAX_SAFE_HIGH) this.fail('length field too large');
            len = hi * TWO_32 + lo;
          } else {
            if (this.lenHave === 0) this.tokenStart = this.bytesSeen + pos;
            const take = Math.min(8 - this.lenHave, end - pos);
            for (const stop = pos + take; pos < stop; pos++) this.lenBuf[this.lenHave++] = data[pos];
            if (this.lenHave < 8) break;
            this.lenHave = 0;
            const b = this.lenBuf;
            const lo = (b[0] | (b[1] << 8) | (b[2] << 16)) + b[3] * 0x100_0000;
            const hi = (b[4] | (b[5] << 8) | (b[6] << 16)) + b[7] * 0x100_0000;
            if (hi > MAX_SAFE_HIGH) this.fail('length field too large');
            len = hi * TWO_32 + lo;
          }
          this.onLength(len);
          break;
        }
        case L_STR: {
          // Tokens are short: a plain loop beats creating a subarray view per token.
          const take = Math.min(this.tokWant - this.tokLen, end - pos);
          const tok = this.tok;
          let t = this.tokLen;
          for (const stop = pos + take; pos < stop; pos++) tok[t++] = data[pos];
          this.tokLen = t;
          if (this.tokLen === this.tokWant) this.onString();
          break;
        }
        case L_SKIP: {
          const avail = end - pos;
          if (avail < this.remaining) {
            this.remaining -= avail;
            pos = end;
          } else {
            pos += this.remaining;
            this.remaining = 0;
            this.afterContents();
          }
          break;
        }
        case L_PAD: {
          const start = pos;
          const stop = Math.min(end, pos + this.padLeft);
          for (; pos < stop; pos++) {
            if (data[pos] !== 0) this.fail('non-zero padding', this.bytesSeen + pos);
          }
          this.padLeft -= stop - start;
          if (this.padLeft === 0) this.lexer = L_LEN;
          break;
        }
      }
    }
    this.bytesSeen += end;
  }

  private onLength(len: number): void {
    if (this.grammar === G_CONTENTS) {
      this.contentBytes += len;
      this.remaining = len;
      this.padLeft = (8 - (len % 8)) % 8;
      if (len === 0) this.afterContents();
      else this.lexer = L_SKIP;
      return;
    }
    if (len > MAX_TOKEN[this.grammar]) this.fail(EXPECTED[this.grammar]);
    this.tokWant = len;
    this.tokLen = 0;
    this.padLeft = (8 - (len % 8)) % 8;
    if (len === 0) this.onString();
    else this.lexer = L_STR;
  }

  private afterContents(): void {
    this.grammar = G_NODE_CLOSE;
    this.lexer = this.padLeft > 0 ? L_PAD : L_LEN;
  }

  private is(t: Uint8Array): boolean {
    const n = this.tokLen;
    if (n !== t.length) return false;
    const tok = this.tok;
    for (let i = 0; i < n; i++) if (tok[i] !== t[i]) return false;
    return true;
  }

  private onString(): void {
    this.lexer = this.padLeft > 0 ? L_PAD : L_LEN;
    switch (this.grammar) {
      case G_MAGIC:
        if (!this.is(T_MAGIC)) this.fail(EXPECTED[G_MAGIC]);
        this.grammar = G_OPEN;
        return;
      case G_OPEN:
        if (!this.is(T_OPEN)) this.fail(EXPECTED[G_OPEN]);
        this.grammar = G_TYPE;
        return;
      case G_TYPE:
        if (!this.is(T_TYPE)) this.fail(EXPECTED[G_TYPE]);
        this.grammar = G_TYPE_VALUE;
        return;
      case G_TYPE_VALUE:
        if (this.is(T_REGULAR)) {
          this.files++;
          this.grammar = G_REG_TAG;
        } else if (this.is(T_DIRECTORY)) {
          if (this.depth >= NAR_MAX_DEPTH) this.fail(`directories nested deeper than ${NAR_MAX_DEPTH}`);
          this.directories++;
          this.depth++;
          if (this.prevNames.length < this.depth) {
            this.prevNames.push(new Uint8Array(NAR_MAX_NAME_LENGTH));
            this.prevLens.push(-1);
          }
          this.prevLens[this.depth - 1] = -1;
          this.grammar = G_DIR_ITEM;
        } else if (this.is(T_SYMLINK)) {
          this.symlinks++;
          this.grammar = G_TARGET_TAG;
        } else {
          this.fail(EXPECTED[G_TYPE_VALUE]);
        }
        return;
      case G_REG_TAG:
        if (this.is(T_EXECUTABLE)) this.grammar = G_EXEC_VALUE;
        else if (this.is(T_CONTENTS)) this.grammar = G_CONTENTS;
        else this.fail(EXPECTED[G_REG_TAG]);
        return;
      case G_EXEC_VALUE:
        // Only the empty string gets here: MAX_TOKEN is 0.
        this.grammar = G_CONTENTS_TAG;
        return;
      case G_CONTENTS_TAG:
        if (!this.is(T_CONTENTS)) this.fail(EXPECTED[G_CONTENTS_TAG]);
        this.grammar = G_CONTENTS;
        return;
      case G_NODE_CLOSE:
        if (!this.is(T_CLOSE)) this.fail(EXPECTED[G_NODE_CLOSE]);
        this.grammar = this.depth === 0 ? G_DONE : G_ENTRY_CLOSE;
        return;
      case G_TARGET_TAG:
        if (!this.is(T_TARGET)) this.fail(EXPECTED[G_TARGET_TAG]);
        this.grammar = G_TARGET;
        return;
      case G_TARGET:
        if (this.tokLen === 0) this.fail('empty symlink target');
        for (let i = 0; i < this.tokLen; i++) if (this.tok[i] === 0) this.fail('symlink target contains NUL');
        this.grammar = G_NODE_CLOSE;
        return;
      case G_DIR_ITEM:
        if (this.is(T_ENTRY)) {
          this.grammar = G_ENTRY_OPEN;
        } else if (this.is(T_CLOSE)) {
          this.depth--;
          this.grammar = this.depth === 0 ? G_DONE : G_ENTRY_CLOSE;
        } else {
          this.fail(EXPECTED[G_DIR_ITEM]);
        }
        return;
      case G_ENTRY_OPEN:
        if (!this.is(T_OPEN)) this.fail(EXPECTED[G_ENTRY_OPEN]);
        this.grammar = G_NAME_TAG;
        return;
      case G_NAME_TAG:
        if (!this.is(T_NAME)) this.fail(EXPECTED[G_NAME_TAG]);
        this.grammar = G_NAME;
        return;
      case G_NAME:
        this.checkName();
        this.grammar = G_NODE_TAG;
        return;
      case G_NODE_TAG:
        if (!this.is(T_NODE)) this.fail(EXPECTED[G_NODE_TAG]);
        this.grammar = G_OPEN;
        return;
      case G_ENTRY_CLOSE:
        if (!this.is(T_CLOSE)) this.fail(EXPECTED[G_ENTRY_CLOSE]);
        this.grammar = G_DIR_ITEM;
        return;
    }
  }

  private checkName(): void {
    const n = this.tokLen;
    const tok = this.tok;
    if (n === 0) this.fail('empty entry name');
    if (tok[0] === 0x2e && (n === 1 || (n === 2 && tok[1] === 0x2e))) this.fail("entry name is '.' or '..'");
    for (let i = 0; i < n; i++) {
      const c = tok[i];
      if (c === 0x2f) this.fail("entry name contains '/'");
      if (c === 0) this.fail('entry name contains NUL');
    }
    const level = this.depth - 1;
    const prev = this.prevNames[level];
    const prevLen = this.prevLens[level];
    if (prevLen >= 0) {
      // Strictly increasing by raw bytes, as Nix compares std::string.
      const m = Math.min(n, prevLen);
      let cmp = 0;
      for (let i = 0; i < m && cmp === 0; i++) cmp = tok[i] - prev[i];
      if (cmp === 0) cmp = n - prevLen;
      if (cmp === 0) this.fail('duplicate directory entry');
      if (cmp < 0) this.fail('directory entries are not sorted');
    }
    prev.set(tok.subarray(0, n));
    this.prevLens[level] = n;
  }
}
