// Structural validation against the JSON Schema that ships with l4mux (l4mux.schema.json,
// draft 2020-12), with ajv's errors rewritten as readable "path: reason" issues.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';

import { issue, type Issue } from './issues.js';
import { pointerToSegments, isRecord, type PathSegment } from './path.js';
import { closestMatch } from './suggest.js';

/** Where the schema file is (next to this module, in src/config and dist/config). */
export const SCHEMA_PATH = fileURLToPath(new URL('./l4mux.schema.json', import.meta.url));

/**
 * Annotation keyword of the schema: advice appended to errors of one keyword, e.g.
 * "x-hint": { "type": "write the seed as a string" }.
 */
const HINT_KEYWORD = 'x-hint';

let validator: ValidateFunction | undefined;

export function loadSchema(): Record<string, unknown> {
  const schema: unknown = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'));
  if (!isRecord(schema)) throw new Error(`${SCHEMA_PATH}: not a JSON Schema object`);
  return schema;
}

function compiled(): ValidateFunction {
  if (validator === undefined) {
    const ajv = new Ajv2020.default({ allErrors: true, verbose: true, strict: true });
    ajv.addVocabulary([HINT_KEYWORD]);
    validator = ajv.compile(loadSchema());
  }
  return validator;
}

/** Validates `document` against the schema; an empty list means it conforms. */
export function checkSchema(document: unknown): Issue[] {
  const validate = compiled();
  if (validate(document)) return [];
  return schemaIssues(validate.errors ?? [], document);
}

/**
 * ajv's errors for `document` (found at `prefix` inside the config file) as readable
 * `path: reason` issues. A value of the wrong type makes its other errors (const, enum,
 * range) noise, so those are left out.
 */
export function schemaIssues(errors: ErrorObject[], document: unknown, prefix: PathSegment[] = []): Issue[] {
  const typeErrorAt = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const valueKeywords = new Set(['const', 'enum', 'minimum', 'maximum', 'minItems', 'maxItems', 'minLength', 'maxLength']);
  return errors
    .filter((e) => !(valueKeywords.has(e.keyword) && typeErrorAt.has(e.instancePath)))
    .map((e) => translate(e, document, prefix));
}

function translate(e: ErrorObject, document: unknown, prefix: PathSegment[]): Issue {
  const path = [...prefix, ...pointerToSegments(e.instancePath, document)];
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
      const advice =
        guess !== undefined ? `did you mean "${guess}"?` : allowed.length > 0 ? `allowed: ${allowed.join(', ')}` : 'none are allowed here';
      return issue(path, `unknown property ${JSON.stringify(name)} (${advice})`);
    }
    case 'required':
      return issue([...path, String(params['missingProperty'])], 'required property is missing');
    case 'type':
      return issue(path, `expected ${expectedType(String(params['type']), parent)}, got ${describeValue(data)}${hint}`);
    case 'const':
      if (path.length === 1 && path[0] === 'version') {
        return issue(path, `unsupported version ${JSON.stringify(data)} (this l4mux reads version ${JSON.stringify(params['allowedValue'])})`);
      }
      return issue(path, `must be ${JSON.stringify(params['allowedValue'])}, got ${describeValue(data)}`);
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
    case 'minItems':
      return issue(path, Array.isArray(data) && data.length === 0 ? 'an empty list; give at least one entry, or leave the property out' : `fewer than the ${String(params['limit'])} entries required`);
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
    case 'number':
      return 'a number';
    default:
      return type;
  }
}

/** A value as it should appear in a message: short, typed, JSON-quoted when a string. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return `the string ${JSON.stringify(shown)}`;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return typeof value;
}
