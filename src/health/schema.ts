// Structural validation of health checks against health.schema.json, with ajv's errors
// rewritten as "path: reason" issues worded like src/config/schema.ts does for the rest of the
// file. Once the fragment is merged into l4mux.schema.json (mergeHealthSchema), the config's
// own schema check covers this and only checkHealthSemantics is still needed.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';

import { issue, type Issue } from '../config/issues.js';
import { isRecord, pointerToSegments, type PathSegment } from '../config/path.js';
import { describeValue } from '../config/schema.js';
import { closestMatch } from '../config/suggest.js';

export const HEALTH_SCHEMA_PATH = fileURLToPath(new URL('./health.schema.json', import.meta.url));

/** The annotation keyword l4mux.schema.json uses for advice appended to an error. */
const HINT_KEYWORD = 'x-hint';

let validator: ValidateFunction | undefined;

export function loadHealthSchema(): Record<string, unknown> {
  const schema: unknown = JSON.parse(readFileSync(HEALTH_SCHEMA_PATH, 'utf8'));
  if (!isRecord(schema) || !isRecord(schema['$defs'])) throw new Error(`${HEALTH_SCHEMA_PATH}: not a schema fragment with $defs`);
  return schema;
}

/**
 * `main` (the parsed l4mux.schema.json) with the health-check fragment merged in: its $defs,
 * and a "healthCheck" property on pools and on backends. `main` is not modified.
 */
export function mergeHealthSchema(main: Record<string, unknown>): Record<string, unknown> {
  const merged = structuredClone(main);
  const defs = merged['$defs'];
  if (!isRecord(defs)) throw new Error('the main schema has no $defs');
  const fragmentDefs = loadHealthSchema()['$defs'] as Record<string, unknown>;
  for (const [name, def] of Object.entries(fragmentDefs)) {
    if (Object.hasOwn(defs, name)) throw new Error(`the main schema already defines $defs.${name}`);
    defs[name] = def;
  }
  for (const owner of ['pool', 'backend']) {
    const def = defs[owner];
    const properties = isRecord(def) ? def['properties'] : undefined;
    if (!isRecord(properties)) throw new Error(`the main schema has no $defs.${owner}.properties`);
    properties['healthCheck'] = { $ref: '#/$defs/healthCheck' };
  }
  return merged;
}

function compiled(): ValidateFunction {
  if (validator === undefined) {
    const fragment = loadHealthSchema();
    const ajv = new Ajv2020.default({ allErrors: true, verbose: true, strict: true });
    ajv.addVocabulary([HINT_KEYWORD]);
    validator = ajv.compile({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: 'urn:l4mux:config:1:health-check',
      $defs: fragment['$defs'],
      $ref: '#/$defs/healthCheck',
    });
  }
  return validator;
}

/** Where a document has health checks: every pools.<name>.healthCheck and backends[i].healthCheck. */
export function healthCheckLocations(document: unknown): Array<{ path: PathSegment[]; value: unknown }> {
  const found: Array<{ path: PathSegment[]; value: unknown }> = [];
  const pools = isRecord(document) ? document['pools'] : undefined;
  if (!isRecord(pools)) return found;
  for (const [name, pool] of Object.entries(pools)) {
    if (!isRecord(pool)) continue;
    if (Object.hasOwn(pool, 'healthCheck')) found.push({ path: ['pools', name, 'healthCheck'], value: pool['healthCheck'] });
    const backends = pool['backends'];
    if (!Array.isArray(backends)) continue;
    backends.forEach((backend: unknown, i) => {
      if (isRecord(backend) && Object.hasOwn(backend, 'healthCheck')) {
        found.push({ path: ['pools', name, 'backends', i, 'healthCheck'], value: backend['healthCheck'] });
      }
    });
  }
  return found;
}

/** Checks every health check of `document` against the fragment; an empty list means they conform. */
export function checkHealthSchema(document: unknown): Issue[] {
  const validate = compiled();
  const issues: Issue[] = [];
  for (const { path, value } of healthCheckLocations(document)) {
    if (validate(value)) continue;
    const errors = validate.errors ?? [];
    const typeErrorAt = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
    const valueKeywords = new Set(['const', 'enum', 'minimum', 'maximum', 'minItems', 'maxItems', 'minLength', 'maxLength']);
    for (const e of errors) {
      if (valueKeywords.has(e.keyword) && typeErrorAt.has(e.instancePath)) continue;
      issues.push(translate(e, value, path));
    }
  }
  return issues;
}

function translate(e: ErrorObject, value: unknown, prefix: PathSegment[]): Issue {
  const path = [...prefix, ...pointerToSegments(e.instancePath, value)];
  const parent: Record<string, unknown> = isRecord(e.parentSchema) ? e.parentSchema : {};
  const params: Record<string, unknown> = isRecord(e.params) ? e.params : {};
  const hints = parent[HINT_KEYWORD];
  const hintText = isRecord(hints) ? hints[e.keyword] : undefined;
  const hint = typeof hintText === 'string' ? `; ${hintText}` : '';
  const data: unknown = e.data;
  switch (e.keyword) {
    case 'additionalProperties': {
      const name = String(params['additionalProperty']);
      const allowed = isRecord(parent['properties']) ? Object.keys(parent['properties']) : [];
      const guess = closestMatch(name, allowed);
      const advice = guess !== undefined ? `did you mean "${guess}"?` : allowed.length > 0 ? `allowed: ${allowed.join(', ')}` : 'none are allowed here';
      return issue(path, `unknown property ${JSON.stringify(name)} (${advice})`);
    }
    case 'type':
      return issue(path, `expected ${expectedType(String(params['type']), parent)}, got ${describeValue(data)}${hint}`);
    case 'enum': {
      const allowed = Array.isArray(params['allowedValues']) ? params['allowedValues'] : [];
      const list = allowed.map((v) => JSON.stringify(v)).join(', ');
      if (typeof data !== 'string') return issue(path, `expected one of ${list}, got ${describeValue(data)}`);
      const guess = closestMatch(data, allowed.filter((v): v is string => typeof v === 'string'));
      return issue(path, `${JSON.stringify(data)} is not one of ${list}${guess !== undefined ? ` (did you mean "${guess}"?)` : ''}`);
    }
    case 'minimum':
    case 'maximum':
      return issue(path, `${describeValue(data)} is out of range (${range(parent)})${hint}`);
    case 'maxItems':
      return issue(path, `${Array.isArray(data) ? data.length : '?'} entries, more than the ${String(params['limit'])} allowed`);
    case 'minLength':
      return issue(path, 'an empty string');
    case 'maxLength':
      return issue(path, `${typeof data === 'string' ? data.length : '?'} characters long, more than the ${String(params['limit'])} allowed`);
    default:
      return issue(path, e.message ?? `fails schema keyword "${e.keyword}"`);
  }
}

function range(schema: Record<string, unknown>): string {
  const min = schema['minimum'];
  const max = schema['maximum'];
  if (typeof min === 'number' && typeof max === 'number') return `${min}..${max}`;
  if (typeof min === 'number') return `at least ${min}`;
  if (typeof max === 'number') return `at most ${max}`;
  return 'no range';
}

function expectedType(type: string, schema: Record<string, unknown>): string {
  switch (type) {
    case 'integer': {
      const min = schema['minimum'];
      const max = schema['maximum'];
      return typeof min === 'number' && typeof max === 'number' ? `an integer from ${min} to ${max}` : 'an integer';
    }
    case 'number': {
      const min = schema['minimum'];
      const max = schema['maximum'];
      return typeof min === 'number' && typeof max === 'number' ? `a number from ${min} to ${max}` : 'a number';
    }
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'an object';
    case 'array':
      return 'an array';
    case 'string':
      return 'a string';
    default:
      return type;
  }
}
