// Entry points: text or file in, a normalized config (plus warnings) or the list of errors out.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

import { checkClusterSemantics } from '../cluster/config.js';
import { checkBgpSemantics } from '../bgp/validate.js';
import { checkHealthSemantics } from './health/validate.js';
import { checkMetricsSection } from '../metrics/config.js';
import { formatIssues, issue, type Issue } from './issues.js';
import { parseJson } from './json.js';
import { checkMemoryBudget } from './memory.js';
import { checkPersistenceSemantics } from '../persistence/config.js';
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

/** The largest VIP map read (a 4096-VIP map with big pools is a few MiB). */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

function fileKind(stat: { isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean; isDirectory(): boolean }): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  if (stat.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/**
 * The bytes of a VIP map: a regular file of at most MAX_CONFIG_BYTES. Opened non-blocking and
 * checked before any read, so that a FIFO nobody writes, a device such as /dev/zero or a huge
 * file neither hangs the caller (a reload would hold the daemon's update queue) nor fills
 * memory. Returns the error text instead when the file is none of that.
 */
async function readConfigBytes(path: string): Promise<Buffer | string> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return `${path}: ${fileKind(stat)}, not a regular file: l4mux reads its configuration from regular files only`;
    if (stat.size > MAX_CONFIG_BYTES) return `${path}: ${stat.size} bytes, larger than the ${MAX_CONFIG_BYTES} a configuration may have`;
    // Read at most one byte past the limit: a file growing while read is still refused.
    const buffer = Buffer.alloc(Math.min(MAX_CONFIG_BYTES + 1, stat.size + 1));
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) break;
    }
    if (length > MAX_CONFIG_BYTES) return `${path}: larger than the ${MAX_CONFIG_BYTES} bytes a configuration may have`;
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

export async function loadConfigFile(path: string): Promise<ConfigResult> {
  return (await loadConfigFileWithDigest(path)).result;
}

/** loadConfigFile, plus the SHA-256 (hex) of the bytes read: which file a daemon runs. */
export async function loadConfigFileWithDigest(path: string): Promise<{ result: ConfigResult; sha256?: string }> {
  let bytes: Buffer | string;
  try {
    bytes = await readConfigBytes(path);
  } catch (e) {
    return { result: { ok: false, errors: [`${path}: cannot read the file (${describeFsError(e)})`] } };
  }
  if (typeof bytes === 'string') return { result: { ok: false, errors: [bytes] } };
  return { result: parseConfig(bytes.toString('utf8'), path), sha256: createHash('sha256').update(bytes).digest('hex') };
}

function check(document: unknown, earlier: Issue[]): ConfigResult {
  const schemaIssues = checkSchema(document);
  const semantic = checkSemantics(document, schemaIssues);
  const health = checkHealthSemantics(document, schemaIssues);
  const cluster = checkClusterSemantics(document, schemaIssues);
  const bgp = checkBgpSemantics(document, schemaIssues);
  const persistence = checkPersistenceSemantics(document, schemaIssues);
  const errors = [...earlier, ...schemaIssues, ...semantic.errors, ...health.errors, ...cluster, ...bgp.errors, ...checkMetricsSection(document), ...persistence.errors];
  if (errors.length > 0) return { ok: false, errors: formatIssues(errors, document) };
  // The schema and the semantic checks passed: the document has the input shape.
  const config = normalize(document as L4muxConfigInput, health.checks);
  if (bgp.config !== undefined) config.bgp = bgp.config;
  const memory = checkMemoryBudget(config);
  if (memory !== undefined) return { ok: false, errors: formatIssues([memory], document) };
  return { ok: true, config, warnings: formatIssues([...semantic.warnings, ...health.warnings, ...bgp.warnings, ...persistence.warnings], document) };
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
