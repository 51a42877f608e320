// Entry points: text or file in, a normalized config (plus warnings) or the list of errors out.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { checkClusterSemantics } from '../cluster/config.js';
import { checkBgpSemantics } from '../bgp/validate.js';
import { checkHealthSemantics } from './health/validate.js';
import { checkMetricsSection } from '../metrics/config.js';
import { formatIssues, issue, type Issue } from './issues.js';
import { parseJson } from './json.js';
import { normalize } from './normalize.js';
import { checkSchema } from './schema.js';
import { checkSemantics } from './semantic.js';
import type { ConfigResult, L4muxConfigInput } from './types.js';

/** Parses and validates config text; `sourceName` (usually the file path) prefixes syntax errors. */
export function parseConfig(text: string, sourceName = '<config>'): ConfigResult {
  const parsed = parseJson(text);
  if (!parsed.ok) {
    const { line, column } = parsed.position;
    return { ok: false, errors: [`${sourceName}:${line}:${column}: ${parsed.reason}`] };
  }
  const duplicates = parsed.duplicates.map((d) =>
    issue(d.path, `defined twice (line ${d.first.line}, column ${d.first.column} and line ${d.second.line}, column ${d.second.column})`),
  );
  return check(parsed.value, duplicates);
}

/** Validates an already parsed document (for instance one received over an API). */
export function validateConfig(document: unknown): ConfigResult {
  return check(document, []);
}

export async function loadConfigFile(path: string): Promise<ConfigResult> {
  return (await loadConfigFileWithDigest(path)).result;
}

/** loadConfigFile, plus the SHA-256 (hex) of the bytes read: which file a daemon runs. */
export async function loadConfigFileWithDigest(path: string): Promise<{ result: ConfigResult; sha256?: string }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    return { result: { ok: false, errors: [`${path}: cannot read the file (${describeFsError(e)})`] } };
  }
  return { result: parseConfig(bytes.toString('utf8'), path), sha256: createHash('sha256').update(bytes).digest('hex') };
}

function check(document: unknown, earlier: Issue[]): ConfigResult {
  const schemaIssues = checkSchema(document);
  const semantic = checkSemantics(document, schemaIssues);
  const health = checkHealthSemantics(document, schemaIssues);
  const cluster = checkClusterSemantics(document, schemaIssues);
  const bgp = checkBgpSemantics(document, schemaIssues);
  const errors = [...earlier, ...schemaIssues, ...semantic.errors, ...health.errors, ...cluster, ...bgp.errors, ...checkMetricsSection(document)];
  if (errors.length > 0) return { ok: false, errors: formatIssues(errors, document) };
  // The schema and the semantic checks passed: the document has the input shape.
  const config = normalize(document as L4muxConfigInput, health.checks);
  if (bgp.config !== undefined) config.bgp = bgp.config;
  return { ok: true, config, warnings: formatIssues([...semantic.warnings, ...health.warnings, ...bgp.warnings], document) };
}

function describeFsError(e: unknown): string {
  const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : '';
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return e instanceof Error ? e.message : String(e);
  }
}
