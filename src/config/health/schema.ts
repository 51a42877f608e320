// Structural validation of health checks alone, against the healthCheck definitions of
// l4mux.schema.json, with ajv's errors rewritten as "path: reason" issues like the rest of the
// file. The config's own schema check covers them already; this is for callers that validate
// health checks on their own (validateHealthConfig).
import Ajv2020 from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';

import type { Issue } from '../issues.js';
import { isRecord, type PathSegment } from '../path.js';
import { loadSchema, schemaIssues } from '../schema.js';

/** The annotation keyword l4mux.schema.json uses for advice appended to an error. */
const HINT_KEYWORD = 'x-hint';

let validator: ValidateFunction | undefined;

/** The health-check definitions ($defs.healthCheck*) of l4mux.schema.json. */
export function healthSchemaDefs(): Record<string, unknown> {
  const defs = loadSchema()['$defs'];
  if (!isRecord(defs)) throw new Error('l4mux.schema.json has no $defs');
  return Object.fromEntries(Object.entries(defs).filter(([name]) => name.startsWith('healthCheck')));
}

function compiled(): ValidateFunction {
  if (validator === undefined) {
    const ajv = new Ajv2020.default({ allErrors: true, verbose: true, strict: true });
    ajv.addVocabulary([HINT_KEYWORD]);
    validator = ajv.compile({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: 'urn:l4mux:config:1:health-check',
      $defs: healthSchemaDefs(),
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
