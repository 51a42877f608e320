import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { loadConfigFile, parseConfig } from '../../src/config/index.js';
import { parseJson } from '../../src/config/json.js';
import { fixture } from './helpers.js';

const syntax = (text: string): string[] => {
  const result = parseConfig(text, 'l4mux.json');
  return result.ok ? [] : result.errors;
};

describe('JSON syntax errors', () => {
  it('report the file, line and column of a missing comma', async () => {
    const path = fixture('syntax-error.json');
    expect(await loadConfigFile(path)).toEqual({
      ok: false,
      errors: [`${path}:5:5: expected ',' or '}' after a property value (missing comma?)`],
    });
  });

  it.each<[string, string, string]>([
    ['trailing comma in an object', '{\n  "version": 1,\n}', "l4mux.json:3:1: trailing comma before '}' (JSON allows no comma after the last property)"],
    ['trailing comma in an array', '{ "vips": [1, 2,] }', "l4mux.json:1:17: trailing comma before ']' (JSON allows no comma after the last element)"],
    ['missing comma in an array', '{ "vips": [\n  {}\n  {}\n] }', "l4mux.json:3:3: expected ',' or ']' after an array element (missing comma?)"],
    ['a comment', '{\n  // the web VIP\n}', 'l4mux.json:2:3: comments are not allowed in JSON'],
    ['single quotes', "{ 'version': 1 }", 'l4mux.json:1:3: strings and property names must use double quotes, not single quotes'],
    ['an unquoted property name', '{ version: 1 }', "l4mux.json:1:3: property names must be in double quotes (found 'version')"],
    ['an unquoted string value', '{ "protocol": tcp }', "l4mux.json:1:15: expected a value, found 'tcp' (strings must be in double quotes)"],
    ['a misspelt literal', '{ "icmpEcho": ture }', "l4mux.json:1:15: invalid literal 'ture' (expected true, false or null)"],
    ['a leading zero', '{ "port": 080 }', 'l4mux.json:1:11: invalid number "080" (leading zeros are not allowed)'],
    ['a hex number', '{ "seed": 0x5eed }', 'l4mux.json:1:11: invalid number "0x5eed" (JSON has no hex numbers; write hex values as strings)'],
    ['an unterminated string', '{ "address": "192.0.2.1,\n  "port": 80 }', 'l4mux.json:1:14: unterminated string (strings cannot span lines; missing closing double quote?)'],
    ['a bad escape', '{ "name": "a\\qb" }', 'l4mux.json:1:13: invalid escape "\\q" in string'],
    ['a missing colon', '{ "version" 1 }', "l4mux.json:1:13: expected ':' after property name \"version\", found '1'"],
    ['an unclosed object', '{\n  "node": {\n    "seed": "1"\n', "l4mux.json:4:1: unexpected end of file (expected ',' or '}' after a property value; '{' at line 2, column 11 is never closed with '}')"],
    ['an empty file', '  \n', 'l4mux.json:1:1: the file is empty (expected a JSON object)'],
    ['content after the document', '{}\n{}', "l4mux.json:2:1: unexpected '{' after the end of the JSON document"],
    ['a 401-digit number', `{ "weight": 1${'0'.repeat(400)} }`, 'l4mux.json:1:13: number too long (401 characters, at most 64): no value here needs so many digits'],
    ['NaN', '{ "weight": NaN }', "l4mux.json:1:13: 'NaN' is not a JSON value"],
    ['typographic quotes', '{ \u201cversion\u201d: 1 }', 'l4mux.json:1:3: typographic quote \u201c found; JSON needs straight double quotes (")'],
  ])('%s', (_what, text, expected) => {
    expect(syntax(text)).toEqual([expected]);
  });

  it('count columns after a byte order mark as editors do', () => {
    expect(syntax('\ufeff{ "a" 1 }')).toEqual(["l4mux.json:1:7: expected ':' after property name \"a\", found '1'"]);
  });

  it('use CRLF line ends like LF ones', () => {
    expect(syntax('{\r\n  "a": 1\r\n  "b": 2\r\n}')).toEqual(["l4mux.json:3:3: expected ',' or '}' after a property value (missing comma?)"]);
  });
});

describe('the JSON parser', () => {
  it('parses what JSON.parse parses', () => {
    const texts = [
      readFileSync(fixture('full.json'), 'utf8'),
      '{"a":[1,-2.5e3,0.25,1E-2,true,false,null,"x\\"y\\\\z\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"],"b":{}, "c":[]}',
      '"just a string"',
      '-0',
    ];
    for (const text of texts) {
      const result = parseJson(text);
      expect(result.ok && result.value).toEqual(JSON.parse(text));
    }
  });

  it('keeps "__proto__" as data instead of setting a prototype', () => {
    const result = parseJson('{ "__proto__": { "polluted": true } }');
    if (!result.ok) throw new Error(result.reason);
    expect(Object.getPrototypeOf(result.value)).toBe(Object.prototype);
    expect(Object.keys(result.value as object)).toEqual(['__proto__']);
    expect(parseConfig('{ "__proto__": {} }', 'x').ok).toBe(false);
  });

  it('rejects keys defined twice, with both positions', () => {
    const text = [
      '{',
      '  "version": 1,',
      '  "node": { "seed": "1", "gatewayMac": "02:00:00:00:00:fe", "outerSource": { "ipv4": "10.0.0.1" } },',
      '  "pools": {',
      '    "web": { "backends": [ { "address": "10.1.0.1" } ] },',
      '    "web": { "backends": [ { "address": "10.1.0.2" } ] }',
      '  },',
      '  "vips": [ { "address": "192.0.2.10", "protocol": "tcp", "port": 80, "port": 81, "pool": "web" } ]',
      '}',
    ].join('\n');
    expect(syntax(text)).toEqual([
      'pools.web: defined twice (line 5, column 5 and line 6, column 5)',
      'vips[0].port: defined twice (line 8, column 59 and line 8, column 71)',
    ]);
  });
});
