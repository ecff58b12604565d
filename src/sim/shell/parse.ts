/**
 * The shell's command-line parser: POSIX sh's grammar, reduced to what a person types at a prompt.
 *
 * Contract: `parse(text)` turns a line or script into a `Script` (lists of and-or chains of pipelines of
 * simple commands) or throws `ShellSyntaxError` (bash's `syntax error near unexpected token` wording) or
 * `ShellIncomplete` when more input would complete it (an open quote, a trailing `\`, `|`, `&&` or `||`),
 * so a REPL can ask for a continuation line. Supported: blanks, `#` comments, '' and "" quotes, backslash
 * escapes, `$NAME`, `${NAME}`, `$?`, `$$`, `$#`, `$0`, leading `~`, `;`, newlines, `&&`, `||`, `|`, `!`,
 * `NAME=value` prefixes, redirections `<`, `>`, `>>`, `>|`, `N>`, `N>>`, `N>&M`, `&>`. Not supported (a
 * syntax error that says so): `&` background jobs, `( )` subshells, `<<` here-documents, `$( )` and
 * backquote substitutions, compound commands (if/for/while are ordinary words and fail as commands).
 * Words are binary strings.
 */
import { KhoError } from '../../errors.ts';

/** One piece of a word: literal text (quoted or not) or a parameter expansion. */
export type WordPart =
  | { kind: 'lit'; text: string; quoted: boolean }
  | { kind: 'param'; name: string; quoted: boolean }
  | { kind: 'tilde' };
export type Word = WordPart[];

export interface Redirect {
  /** File descriptor redirected (0, 1 or 2; `&>` is fd 1 and 2). */
  fd: number;
  op: '<' | '>' | '>>' | '>&' | '&>';
  /** The file word (for `>&`, a word holding the fd number). */
  target: Word;
}

export interface SimpleCommand {
  assigns: { name: string; value: Word }[];
  words: Word[];
  redirects: Redirect[];
}
export interface Pipeline {
  negate: boolean;
  commands: SimpleCommand[];
}
export interface AndOr {
  first: Pipeline;
  rest: { op: '&&' | '||'; pipeline: Pipeline }[];
}
export type Script = AndOr[];

/** A command line that is not valid shell syntax (`SIM_SHELL_SYNTAX`). */
export class ShellSyntaxError extends KhoError {
  constructor(message: string) {
    super('SIM_SHELL_SYNTAX', message);
  }
}
/** A command line that more input would complete (`SIM_SHELL_INCOMPLETE`): open quote, trailing `|`. */
export class ShellIncomplete extends KhoError {
  constructor(message: string) {
    super('SIM_SHELL_INCOMPLETE', message);
  }
}

type Token =
  | { t: 'word'; word: Word; raw: string }
  | { t: 'op'; op: string }
  | { t: 'redir'; fd: number | undefined; op: string }
  | { t: 'nl' };

const OP_CHARS = '|&;<>()';
const isBlank = (c: string) => c === ' ' || c === '\t';
const isNameStart = (c: string | undefined) => c !== undefined && /[A-Za-z_]/.test(c);
const isNameChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_]/.test(c);

function lex(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i];
    if (isBlank(c)) {
      i++;
      continue;
    }
    if (c === '\\' && src[i + 1] === '\n') {
      i += 2;
      continue;
    }
    if (c === '\n') {
      out.push({ t: 'nl' });
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    if (OP_CHARS.includes(c)) {
      const two = src.slice(i, i + 2);
      if (two === '&>') {
        out.push({ t: 'redir', fd: undefined, op: '&>' });
        i += 2;
      } else if (two === '>>' || two === '>&' || two === '>|' || two === '<<' || two === '<&') {
        out.push({ t: 'redir', fd: undefined, op: two });
        i += 2;
      } else if (c === '>' || c === '<') {
        out.push({ t: 'redir', fd: undefined, op: c });
        i++;
      } else if (two === '&&' || two === '||' || two === ';;') {
        out.push({ t: 'op', op: two });
        i += 2;
      } else {
        out.push({ t: 'op', op: c });
        i++;
      }
      continue;
    }
    // A word.
    const start = i;
    const word: Word = [];
    let lit = '';
    let litQuoted = false;
    const flush = () => {
      if (lit !== '') word.push({ kind: 'lit', text: lit, quoted: litQuoted });
      lit = '';
    };
    const addLit = (s: string, quoted: boolean) => {
      if (lit !== '' && litQuoted !== quoted) flush();
      litQuoted = quoted;
      lit += s;
    };
    const param = (quoted: boolean): boolean => {
      // src[i] === '$'
      const d = src[i + 1];
      if (d === '{') {
        const end = src.indexOf('}', i + 2);
        if (end < 0) throw new ShellIncomplete('unterminated ${');
        const name = src.slice(i + 2, end);
        if (!/^([A-Za-z_][A-Za-z0-9_]*|[?$#0-9])$/.test(name))
          throw new ShellSyntaxError(`\${${name}}: bad substitution`);
        flush();
        word.push({ kind: 'param', name, quoted });
        i = end + 1;
        return true;
      }
      if (d === '(') throw new ShellSyntaxError('command substitution $( ) is not supported');
      if (d === '?' || d === '$' || d === '#' || (d !== undefined && d >= '0' && d <= '9')) {
        flush();
        word.push({ kind: 'param', name: d, quoted });
        i += 2;
        return true;
      }
      if (isNameStart(d)) {
        let j = i + 1;
        while (isNameChar(src[j])) j++;
        flush();
        word.push({ kind: 'param', name: src.slice(i + 1, j), quoted });
        i = j;
        return true;
      }
      return false;
    };
    if (
      c === '~' &&
      (i + 1 >= n ||
        src[i + 1] === '/' ||
        isBlank(src[i + 1]) ||
        OP_CHARS.includes(src[i + 1]) ||
        src[i + 1] === '\n')
    ) {
      word.push({ kind: 'tilde' });
      i++;
    }
    while (i < n) {
      const ch = src[i];
      if (isBlank(ch) || ch === '\n' || OP_CHARS.includes(ch)) break;
      if (ch === '\\') {
        if (i + 1 >= n) throw new ShellIncomplete('trailing backslash');
        if (src[i + 1] === '\n') {
          i += 2;
          continue;
        }
        addLit(src[i + 1], true);
        i += 2;
        continue;
      }
      if (ch === "'") {
        const end = src.indexOf("'", i + 1);
        if (end < 0) throw new ShellIncomplete("unterminated '");
        addLit(src.slice(i + 1, end), true);
        // An empty '' still makes a (quoted, empty) word.
        if (end === i + 1) {
          flush();
          word.push({ kind: 'lit', text: '', quoted: true });
        }
        i = end + 1;
        continue;
      }
      if (ch === '"') {
        i++;
        let any = false;
        while (true) {
          if (i >= n) throw new ShellIncomplete('unterminated "');
          const q = src[i];
          if (q === '"') {
            i++;
            break;
          }
          any = true;
          if (q === '\\' && i + 1 < n && '$`"\\\n'.includes(src[i + 1])) {
            if (src[i + 1] !== '\n') addLit(src[i + 1], true);
            i += 2;
            continue;
          }
          if (q === '`') throw new ShellSyntaxError('command substitution ` ` is not supported');
          if (q === '$' && param(true)) continue;
          addLit(q, true);
          i++;
        }
        if (!any) {
          flush();
          word.push({ kind: 'lit', text: '', quoted: true });
        }
        continue;
      }
      if (ch === '`') throw new ShellSyntaxError('command substitution ` ` is not supported');
      if (ch === '$' && param(false)) continue;
      addLit(ch, false);
      i++;
    }
    flush();
    const raw = src.slice(start, i);
    // An IO number: digits immediately followed by < or >.
    if (/^[0-9]+$/.test(raw) && (src[i] === '<' || src[i] === '>')) {
      const two = src.slice(i, i + 2);
      const op = two === '>>' || two === '>&' || two === '>|' || two === '<<' || two === '<&' ? two : src[i];
      out.push({ t: 'redir', fd: Number(raw), op });
      i += op.length;
      continue;
    }
    out.push({ t: 'word', word, raw });
  }
  return out;
}

const unexpected = (tok: Token | undefined): ShellSyntaxError => {
  const text =
    tok === undefined ? 'newline' : tok.t === 'nl' ? 'newline' : tok.t === 'word' ? tok.raw : tok.op;
  return new ShellSyntaxError(`syntax error near unexpected token \`${text}'`);
};

/** Literal text of a word if it is wholly unquoted literal (for keywords and assignments). */
function plainText(w: Word): string | undefined {
  let s = '';
  for (const p of w) {
    if (p.kind !== 'lit' || p.quoted) return undefined;
    s += p.text;
  }
  return s;
}

export function parse(src: string): Script {
  const toks = lex(src);
  let k = 0;
  const peek = () => toks[k];
  const skipNewlines = () => {
    while (peek()?.t === 'nl') k++;
  };

  const command = (): SimpleCommand | undefined => {
    const cmd: SimpleCommand = { assigns: [], words: [], redirects: [] };
    let any = false;
    while (true) {
      const tok = peek();
      if (tok === undefined) break;
      if (tok.t === 'word') {
        k++;
        any = true;
        const first = tok.word[0];
        if (cmd.words.length === 0 && first?.kind === 'lit' && !first.quoted) {
          const m = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(first.text);
          if (m) {
            const rest: Word = [];
            let remainder = first.text.slice(m[0].length);
            // Tilde expansion applies at the start of an assignment's value too.
            if (remainder === '~' || remainder.startsWith('~/')) {
              rest.push({ kind: 'tilde' });
              remainder = remainder.slice(1);
            }
            if (remainder !== '') rest.push({ kind: 'lit', text: remainder, quoted: false });
            rest.push(...tok.word.slice(1));
            cmd.assigns.push({ name: m[1], value: rest });
            continue;
          }
        }
        cmd.words.push(tok.word);
        continue;
      }
      if (tok.t === 'redir') {
        k++;
        any = true;
        if (tok.op === '<<') throw new ShellSyntaxError('here-documents (<<) are not supported');
        const target = peek();
        if (target === undefined) throw new ShellSyntaxError("syntax error near unexpected token `newline'");
        if (target.t !== 'word') throw unexpected(target);
        k++;
        let op: Redirect['op'];
        let fd: number;
        if (tok.op === '&>') {
          op = '&>';
          fd = 1;
        } else if (tok.op === '<' || tok.op === '<&') {
          op = '<';
          fd = tok.fd ?? 0;
          if (tok.op === '<&') throw new ShellSyntaxError('<& is not supported');
        } else if (tok.op === '>&') {
          op = '>&';
          fd = tok.fd ?? 1;
        } else {
          op = tok.op === '>>' ? '>>' : '>';
          fd = tok.fd ?? 1;
        }
        cmd.redirects.push({ fd, op, target: target.word });
        continue;
      }
      break;
    }
    return any ? cmd : undefined;
  };

  const pipeline = (): Pipeline => {
    let negate = false;
    const t = peek();
    if (t?.t === 'word' && plainText(t.word) === '!') {
      negate = true;
      k++;
    }
    const commands: SimpleCommand[] = [];
    while (true) {
      const c = command();
      if (!c) {
        const tok = peek();
        if (tok === undefined && commands.length > 0) throw new ShellIncomplete('pipe');
        if (tok?.t === 'op' && tok.op === '(') throw new ShellSyntaxError('subshells ( ) are not supported');
        throw unexpected(tok);
      }
      commands.push(c);
      const tok = peek();
      if (tok?.t === 'op' && tok.op === '|') {
        k++;
        skipNewlines();
        if (peek() === undefined) throw new ShellIncomplete('pipe');
        continue;
      }
      break;
    }
    return { negate, commands };
  };

  const andOr = (): AndOr => {
    const first = pipeline();
    const rest: AndOr['rest'] = [];
    while (true) {
      const tok = peek();
      if (tok?.t === 'op' && (tok.op === '&&' || tok.op === '||')) {
        k++;
        skipNewlines();
        if (peek() === undefined) throw new ShellIncomplete(tok.op);
        rest.push({ op: tok.op, pipeline: pipeline() });
        continue;
      }
      break;
    }
    return { first, rest };
  };

  const script: Script = [];
  while (true) {
    skipNewlines();
    const tok = peek();
    if (tok === undefined) break;
    if (tok.t === 'op' && (tok.op === ';' || tok.op === ';;' || tok.op === '&')) throw unexpected(tok);
    script.push(andOr());
    const sep = peek();
    if (sep === undefined) break;
    if (sep.t === 'nl') continue;
    if (sep.t === 'op' && sep.op === ';') {
      k++;
      continue;
    }
    if (sep.t === 'op' && sep.op === '&') throw new ShellSyntaxError('background jobs (&) are not supported');
    throw unexpected(sep);
  }
  return script;
}
