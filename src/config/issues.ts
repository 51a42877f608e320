// A problem found in a config document, and how problems are turned into "path: reason" lines.
import { documentOrder, formatPath, type PathSegment } from './path.js';

export interface Issue {
  path: PathSegment[];
  reason: string;
}

export function issue(path: PathSegment[], reason: string): Issue {
  return { path, reason };
}

/**
 * "path: reason" lines in the order their locations appear in the document (problems at the
 * same place keep the order they were found in), without repeats.
 */
export function formatIssues(issues: readonly Issue[], document: unknown): string[] {
  const order = documentOrder(document);
  // A path that is not in the document (a missing property) ranks right after the problems of
  // the object that lacks it, before those of its children.
  const rank = (path: PathSegment[]): number => {
    for (let n = path.length; n >= 0; n--) {
      const position = order.get(formatPath(path.slice(0, n)));
      if (position !== undefined) return n === path.length ? position : position + 0.5;
    }
    return 0;
  };
  const lines = issues
    .map((it, index) => ({ line: `${formatPath(it.path)}: ${it.reason}`, rank: rank(it.path), index }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .map((it) => it.line);
  return [...new Set(lines)];
}

/** True when `path` or anything below it has one of the issues. */
export function makeIssueLookup(issues: readonly Issue[]): (path: PathSegment[]) => boolean {
  const prefixes = new Set<string>();
  for (const it of issues) {
    for (let n = 0; n <= it.path.length; n++) prefixes.add(formatPath(it.path.slice(0, n)));
  }
  return (path) => prefixes.has(formatPath(path));
}
