// Matching replies (UDP datagrams, HTTP bodies) against what a check expects.
import type { ReplyMatch } from './types.js';

export type Matcher = (reply: Buffer) => boolean;

/** Compiles a match; the regex and hex were validated with the config. */
export function compileMatch(match: ReplyMatch): Matcher {
  switch (match.kind) {
    case 'any':
      return () => true;
    case 'text': {
      const needle = Buffer.from(match.text, 'utf8');
      return (reply) => reply.includes(needle);
    }
    case 'hex': {
      const needle = Buffer.from(match.hex, 'hex');
      return (reply) => reply.includes(needle);
    }
    case 'regex': {
      const re = new RegExp(match.source);
      return (reply) => re.test(reply.toString('utf8'));
    }
  }
}

/** How a match reads in a detail: `contain "pong"`, `match /^ok/`, `contain 0xcafe`. */
export function describeMatch(match: ReplyMatch): string {
  switch (match.kind) {
    case 'any':
      return 'be any reply';
    case 'text':
      return `contain ${JSON.stringify(match.text.length > 40 ? `${match.text.slice(0, 37)}...` : match.text)}`;
    case 'hex':
      return `contain 0x${match.hex.length > 40 ? `${match.hex.slice(0, 37)}...` : match.hex}`;
    case 'regex':
      return `match /${match.source}/`;
  }
}
