// Locations inside a config document, written in JavaScript notation as users see them in
// error messages: vips[2].address, pools.web.backends[0], pools["my pool"].
export type PathSegment = string | number;

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Shown for the document itself (an empty path). */
export const ROOT_PATH = '(root)';

export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const seg of segments) out = appendSegment(out, seg);
  return out === '' ? ROOT_PATH : out;
}

/** `prefix` ('' for the root) extended by one segment. */
function appendSegment(prefix: string, seg: PathSegment): string {
  if (typeof seg === 'number') return `${prefix}[${seg}]`;
  if (IDENTIFIER.test(seg)) return prefix === '' ? seg : `${prefix}.${seg}`;
  return `${prefix}[${JSON.stringify(seg)}]`;
}

/**
 * Converts a JSON Pointer (as ajv reports instance locations) to path segments, using the
 * document to tell array indexes from object keys that look like numbers.
 */
export function pointerToSegments(pointer: string, document: unknown): PathSegment[] {
  if (pointer === '') return [];
  const segments: PathSegment[] = [];
  let node: unknown = document;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^(0|[1-9][0-9]*)$/.test(token)) {
      const index = Number(token);
      segments.push(index);
      node = node[index];
    } else {
      segments.push(token);
      node = isRecord(node) && Object.hasOwn(node, token) ? node[token] : undefined;
    }
  }
  return segments;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The position of every path of a document in document order (pre-order walk), so that
 * errors can be listed in the order they appear in the file.
 */
export function documentOrder(document: unknown): Map<string, number> {
  const order = new Map<string, number>();
  const walk = (node: unknown, path: string): void => {
    order.set(path === '' ? ROOT_PATH : path, order.size);
    if (Array.isArray(node)) node.forEach((child, i) => walk(child, appendSegment(path, i)));
    else if (isRecord(node)) for (const [key, child] of Object.entries(node)) walk(child, appendSegment(path, key));
  };
  walk(document, '');
  return order;
}
