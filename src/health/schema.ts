// Structural validation of health checks against health.schema.json, with ajv's errors
// rewritten as "path: reason" issues worded like src/config/schema.ts does for the rest of the
// file. Once the fragment is merged into l4mux.schema.json (mergeHealthSchema), the config's
// own schema check covers this and only checkHealthSemantics is still needed.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';

import type { Issue } from '../config/issues.js';
import { isRecord, type PathSegment } from '../config/path.js';
import { schemaIssues } from '../config/schema.js';

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
    if (!validate(value)) issues.push(...schemaIssues(validate.errors ?? [], value, path));
  }
  return issues;
}
