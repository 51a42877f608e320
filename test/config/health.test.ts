// The "healthCheck" configuration: every problem reported as "path: reason", resolution of
// each backend's check (defaults, pool, backend; port and tunnel target from the VIPs), and
// the healthCheck definitions of l4mux.schema.json: in step with the defaults, and checked as
// part of the whole config by the config's own validation.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { validateConfig } from '../../src/config/index.js';
import {
  DEFAULT_HEALTH,
  DEFAULT_HTTP,
  DEFAULT_ICMP_PAYLOAD,
  LIMITS,
  healthSchemaDefs,
  mergeHealthCheck,
  validateHealthConfig,
  type HealthCheckSpec,
} from '../../src/config/health/index.js';

/** A JSON-shaped value that tests may freely mutate. */
type Json = { [key: string]: any };

/** Pool "web" (two backends) behind one VIP on port 80, with a plain health check. */
function base(): Json {
  return {
    version: 1,
    node: { seed: '0x1', outerSource: { ipv4: '10.0.0.1', ipv6: 'fd00::1' } },
    pools: {
      web: { healthCheck: { kind: 'tcp' }, backends: [{ address: '10.1.0.1' }, { address: '10.1.0.2', weight: 3 }] },
    },
    vips: [{ address: '192.0.2.10', protocol: 'tcp', port: 80, pool: 'web' }],
  };
}

function run(mutate: (c: Json) => void): ReturnType<typeof validateHealthConfig> {
  const doc = base();
  mutate(doc);
  return validateHealthConfig(JSON.parse(JSON.stringify(doc)));
}

function errors(mutate: (c: Json) => void): string[] {
  const r = run(mutate);
  return r.ok ? [] : r.errors;
}

function warnings(mutate: (c: Json) => void): string[] {
  const r = run(mutate);
  if (!r.ok) throw new Error(`unexpected errors: ${r.errors.join('\n')}`);
  return r.warnings;
}

function checks(mutate: (c: Json) => void): HealthCheckSpec[] {
  const r = run(mutate);
  if (!r.ok) throw new Error(`unexpected errors: ${r.errors.join('\n')}`);
  return r.checks;
}

const hc = (c: Json): Json => c.pools.web.healthCheck;

describe('health check validation: one "path: reason" per problem', () => {
  const cases: Array<[string, (c: Json) => void, string]> = [
    // Structure (schema fragment).
    ['unknown property, with a suggestion', (c) => { hc(c).intervall = 2000; },
      'pools.web.healthCheck: unknown property "intervall" (did you mean "interval"?)'],
    ['unknown property in a backend override', (c) => { c.pools.web.backends[0].healthCheck = { timout: 100 }; },
      'pools.web.backends[0].healthCheck: unknown property "timout" (did you mean "timeout"?)'],
    ['not an object', (c) => { c.pools.web.healthCheck = true; },
      'pools.web.healthCheck: expected an object, got true'],
    ['kind, with a suggestion', (c) => { hc(c).kind = 'HTTP'; },
      'pools.web.healthCheck.kind: "HTTP" is not one of "tcp", "http", "https", "udp", "icmp", "exec" (did you mean "http"?)'],
    ['interval written in seconds', (c) => { hc(c).interval = 2; },
      'pools.web.healthCheck.interval: 2 is out of range (100..3600000); times are in milliseconds (2 s is 2000)'],
    ['interval as a string', (c) => { hc(c).interval = '2s'; },
      'pools.web.healthCheck.interval: expected an integer from 100 to 3600000, got the string "2s"'],
    ['timeout written in seconds', (c) => { hc(c).timeout = 1; },
      'pools.web.healthCheck.timeout: 1 is out of range (10..600000); times are in milliseconds (1 s is 1000)'],
    ['rise 0', (c) => { hc(c).rise = 0; },
      'pools.web.healthCheck.rise: 0 is out of range (1..100)'],
    ['fall not an integer', (c) => { hc(c).fall = 2.5; },
      'pools.web.healthCheck.fall: expected an integer from 1 to 100, got 2.5'],
    ['jitter as a percentage', (c) => { hc(c).jitter = 10; },
      'pools.web.healthCheck.jitter: 10 is out of range (0..0.5)'],
    ['port range', (c) => { hc(c).port = 70000; },
      'pools.web.healthCheck.port: 70000 is out of range (1..65535)'],
    ['weightFrom, with a suggestion', (c) => { hc(c).weightFrom = 'headers'; },
      'pools.web.healthCheck.weightFrom: "headers" is not one of "none", "stdout", "body", "header" (did you mean "header"?)'],
    ['status codes as a number', (c) => { hc(c).kind = 'http'; hc(c).http = { expectStatus: 200 }; },
      'pools.web.healthCheck.http.expectStatus: expected a string, got 200; write status codes as a string: "200", "200-299" or "200,301-302"'],
    ['HTTP method', (c) => { hc(c).kind = 'http'; hc(c).http = { method: 'get' }; },
      'pools.web.healthCheck.http.method: "get" is not one of "GET", "HEAD", "POST", "PUT", "OPTIONS" (did you mean "GET"?)'],
    ['exec args not strings', (c) => { hc(c).kind = 'exec'; hc(c).exec = { command: '/bin/true', args: [1] }; },
      'pools.web.healthCheck.exec.args[0]: expected a string, got 1'],

    // Semantics.
    ['options of another kind', (c) => { hc(c).http = { path: '/' }; },
      'pools.web.healthCheck.http: "http" options are only used by http or https checks (this check is "tcp")'],
    ['path without a slash', (c) => { hc(c).kind = 'http'; hc(c).http = { path: 'healthz' }; },
      'pools.web.healthCheck.http.path: "healthz" does not start with "/"'],
    ['path with a space', (c) => { hc(c).kind = 'http'; hc(c).http = { path: '/a b' }; },
      'pools.web.healthCheck.http.path: "/a b" contains spaces or control characters; percent-encode them'],
    ['status codes: not a list', (c) => { hc(c).kind = 'http'; hc(c).http = { expectStatus: '2xx' }; },
      'pools.web.healthCheck.http.expectStatus: "2xx" is not a list of status codes (write e.g. "200", "200-299" or "200,301-302")'],
    ['status codes: empty range', (c) => { hc(c).kind = 'http'; hc(c).http = { expectStatus: '200,299-200' }; },
      'pools.web.healthCheck.http.expectStatus: "299-200" is an empty range (299 is above 200)'],
    ['status codes: out of range', (c) => { hc(c).kind = 'https'; hc(c).http = { expectStatus: '200-700' }; },
      'pools.web.healthCheck.http.expectStatus: 700 is not an HTTP status code (100..599)'],
    ['invalid body regex', (c) => { hc(c).kind = 'http'; hc(c).http = { expectBodyRegex: 'ok(' }; },
      'pools.web.healthCheck.http.expectBodyRegex: not a valid regular expression: /ok(/: Unterminated group'],
    ['body text and regex', (c) => { hc(c).kind = 'http'; hc(c).http = { expectBody: 'ok', expectBodyRegex: 'ok' }; },
      'pools.web.healthCheck.http: give expectBody or expectBodyRegex, not both'],
    ['HEAD and a body check', (c) => { hc(c).kind = 'http'; hc(c).http = { method: 'HEAD', expectBody: 'ok' }; },
      'pools.web.healthCheck.http.method: a response to HEAD has no body to check'],
    ['Host as a header', (c) => { hc(c).kind = 'http'; hc(c).http = { headers: { Host: 'a' } }; },
      'pools.web.healthCheck.http.headers.Host: set the Host header with http.host'],
    ['invalid header name', (c) => { hc(c).kind = 'http'; hc(c).http = { headers: { 'X Y': 'a' } }; },
      'pools.web.healthCheck.http.headers["X Y"]: "X Y" is not a valid header name'],
    ['udp without a payload', (c) => { hc(c).kind = 'udp'; },
      'pools.web.healthCheck.udp: required for a udp check: what to send (udp.send or udp.sendHex)'],
    ['udp payload twice', (c) => { hc(c).kind = 'udp'; hc(c).udp = { send: 'a', sendHex: '61' }; },
      'pools.web.healthCheck.udp: give send or sendHex, not both'],
    ['udp hex', (c) => { hc(c).kind = 'udp'; hc(c).udp = { sendHex: 'abc' }; },
      'pools.web.healthCheck.udp.sendHex: "abc" is not hex (pairs of hex digits, spaces or colons between bytes allowed)'],
    ['udp expectations', (c) => { hc(c).kind = 'udp'; hc(c).udp = { send: 'a', expect: 'b', expectHex: '62' }; },
      'pools.web.healthCheck.udp: give one of expect, expectRegex and expectHex, not expect and expectHex'],
    ['exec without a command', (c) => { hc(c).kind = 'exec'; hc(c).exec = { args: ['x'] }; },
      'pools.web.healthCheck.exec.command: required for an exec check'],
    ['exec as root', (c) => { hc(c).kind = 'exec'; hc(c).exec = { command: '/bin/true', user: 'root' }; },
      'pools.web.healthCheck.exec.user: "root" is root (uid 0): exec checks run as an unprivileged user; name one (default "nobody")'],
    ['exec as uid 0', (c) => { hc(c).kind = 'exec'; hc(c).exec = { command: '/bin/true', user: '0' }; },
      'pools.web.healthCheck.exec.user: "0" is root (uid 0): exec checks run as an unprivileged user; name one (default "nobody")'],
    ['exec as a user the host does not have', (c) => { hc(c).kind = 'exec'; hc(c).exec = { command: '/bin/true', user: 'no-such-user-l4mux' }; },
      'pools.web.healthCheck.exec.user: no user "no-such-user-l4mux" in /etc/passwd'],
    ['exec user not a string', (c) => { hc(c).kind = 'exec'; hc(c).exec = { command: '/bin/true', user: 65534 }; },
      'pools.web.healthCheck.exec.user: expected a string, got 65534'],
    ['weight from stdout of an http check', (c) => { hc(c).kind = 'http'; hc(c).weightFrom = 'stdout'; },
      'pools.web.healthCheck.weightFrom: "stdout" is only for exec checks (this check is "http")'],
    ['weight from a header of a udp check', (c) => { hc(c).kind = 'udp'; hc(c).udp = { send: 'a' }; hc(c).weightFrom = 'header'; },
      'pools.web.healthCheck.weightFrom: "header" is only for http or https checks (this check is "udp")'],
    ['tunnelled icmp', (c) => { hc(c).kind = 'icmp'; hc(c).tunnelled = true; },
      'pools.web.healthCheck.tunnelled: tunnelled checks are tcp or udp checks (this check is "icmp")'],
    ['tunnelled, several VIPs', (c) => { c.vips.push({ address: '192.0.2.10', protocol: 'tcp', port: 443, pool: 'web' }); hc(c).tunnelled = true; },
      'pools.web.healthCheck.vip: required for a tunnelled check: pool "web" is used by 2 VIPs ("192.0.2.10:tcp:80", "192.0.2.10:tcp:443"); name the one to check'],
    ['tunnelled, unknown VIP', (c) => { hc(c).tunnelled = true; hc(c).vip = 'www'; },
      'pools.web.healthCheck.vip: VIP "www" is not defined'],
    ['tunnelled, VIP of another pool', (c) => {
      c.pools.api = { backends: [{ address: '10.2.0.1' }] };
      c.vips.push({ name: 'api', address: '192.0.2.20', protocol: 'tcp', port: 8080, pool: 'api' });
      hc(c).tunnelled = true; hc(c).vip = 'api';
    }, 'pools.web.healthCheck.vip: VIP "api" (vips[1]) uses pool "api", not "web"'],
    ['tunnelled, all-ports VIP', (c) => { delete c.vips[0].port; hc(c).tunnelled = true; },
      'pools.web.healthCheck.port: required: VIP "192.0.2.10:tcp:*" takes every port, so the check needs one'],
    ['no port: VIPs on different ports', (c) => { c.vips.push({ address: '192.0.2.10', protocol: 'tcp', port: 443, pool: 'web' }); },
      'pools.web.healthCheck.port: required for a tcp check: the VIPs of pool "web" use ports 80, 443'],
    ['no port: all-ports VIP', (c) => { delete c.vips[0].port; },
      'pools.web.healthCheck.port: required for a tcp check: the VIPs of pool "web" take every port'],
    ['no port: pool without VIPs', (c) => { c.vips[0].pool = 'other'; c.pools.other = { backends: [] }; hc(c).kind = 'udp'; hc(c).udp = { send: 'x' }; },
      'pools.web.healthCheck.port: required for a udp check: no VIP uses pool "web"'],
    ['a problem brought in by a backend override', (c) => { c.pools.web.backends[1].healthCheck = { kind: 'exec' }; },
      'pools.web.backends[1].healthCheck.exec.command: required for an exec check'],
    ['a block that does not fit the kind a backend chose', (c) => { c.pools.web.backends[0].healthCheck = { kind: 'icmp', http: { path: '/' } }; },
      'pools.web.backends[0].healthCheck.http: "http" options are only used by http or https checks (this check is "icmp")'],
  ];

  it.each(cases)('%s', (_what, mutate, expected) => {
    expect(errors(mutate)).toEqual(expected.split('\n'));
  });

  it("reports a pool's problem once, not again for each backend that inherits it", () => {
    expect(errors((c) => { hc(c).kind = 'exec'; c.pools.web.backends[0].healthCheck = { interval: 500 }; })).toEqual([
      'pools.web.healthCheck.exec.command: required for an exec check',
    ]);
  });

  it('reports every problem, in document order', () => {
    expect(
      errors((c) => {
        hc(c).kind = 'http';
        hc(c).http = { path: 'x', expectStatus: '1' };
        hc(c).rise = 0;
        c.pools.web.backends[1].healthCheck = { kind: 'udp', udp: { sendHex: 'x' } };
      }),
    ).toEqual([
      'pools.web.healthCheck.rise: 0 is out of range (1..100)',
    ]);
    expect(
      errors((c) => {
        hc(c).kind = 'http';
        hc(c).http = { path: 'x', expectStatus: '1' };
        c.pools.web.backends[1].healthCheck = { kind: 'udp', udp: { sendHex: 'x' } };
      }),
    ).toEqual([
      'pools.web.healthCheck.http.path: "x" does not start with "/"',
      'pools.web.healthCheck.http.expectStatus: "1" is not a list of status codes (write e.g. "200", "200-299" or "200,301-302")',
      'pools.web.backends[1].healthCheck.udp.sendHex: "x" is not hex (pairs of hex digits, spaces or colons between bytes allowed)',
    ]);
  });

  it('warns about settings that do nothing or will surprise', () => {
    expect(warnings((c) => { hc(c).interval = 500; hc(c).timeout = 800; })).toEqual([
      'pools.web.healthCheck.timeout: 800 ms is longer than the interval (500 ms): a slow backend is checked back to back, and failures are seen later than the interval suggests',
    ]);
    expect(warnings((c) => { hc(c).vip = 'x'; })).toEqual(['pools.web.healthCheck.vip: has no effect without "tunnelled": true']);
    expect(warnings((c) => { hc(c).kind = 'icmp'; hc(c).port = 80; })).toEqual(['pools.web.healthCheck.port: has no effect on icmp checks']);
    expect(warnings((c) => { hc(c).kind = 'http'; hc(c).http = { tls: { verify: true } }; })).toEqual([
      'pools.web.healthCheck.http.tls: has no effect on an http check (did you mean "kind": "https"?)',
    ]);
    expect(warnings((c) => { hc(c).kind = 'http'; hc(c).http = { weightHeader: 'X-W' }; })).toEqual([
      'pools.web.healthCheck.http.weightHeader: has no effect without "weightFrom": "header"',
    ]);
  });

  it('needs nothing when no pool or backend has a health check', () => {
    expect(run((c) => { delete c.pools.web.healthCheck; })).toEqual({ ok: true, checks: [], warnings: [] });
  });
});

describe('health check resolution', () => {
  it('fills in the defaults and takes the port of the VIP using the pool', () => {
    const [a, b] = checks(() => {});
    expect(a).toEqual({
      key: 'web/10.1.0.1',
      pool: 'web',
      backend: '10.1.0.1',
      weight: 1,
      kind: 'tcp',
      interval: DEFAULT_HEALTH.interval,
      timeout: DEFAULT_HEALTH.timeout,
      rise: DEFAULT_HEALTH.rise,
      fall: DEFAULT_HEALTH.fall,
      jitter: DEFAULT_HEALTH.jitter,
      weightFrom: 'none',
      target: { address: '10.1.0.1', port: 80 },
    });
    expect(b).toMatchObject({ key: 'web/10.1.0.2', weight: 3 });
  });

  it('keeps the timeout within a short interval unless one is given', () => {
    expect(checks((c) => { hc(c).interval = 300; })[0]).toMatchObject({ interval: 300, timeout: 300 });
    expect(checks((c) => { hc(c).interval = 300; hc(c).timeout = 100; })[0]).toMatchObject({ timeout: 100 });
  });

  it('merges backend overrides over the pool, property by property and block by block', () => {
    const [a, b] = checks((c) => {
      Object.assign(hc(c), { kind: 'http', interval: 1000, http: { path: '/healthz', headers: { 'X-A': '1' }, expectBody: 'ok' } });
      c.pools.web.backends[1].healthCheck = { fall: 5, http: { method: 'POST', expectBodyRegex: '^o', headers: { 'X-B': '2' } } };
    });
    expect(a).toMatchObject({ kind: 'http', interval: 1000, fall: 3, http: { method: 'GET', path: '/healthz', expectBody: 'ok' } });
    // The backend's expectBodyRegex replaces the pool's expectBody (alternatives exclude each other).
    expect(b?.http).toMatchObject({ method: 'POST', path: '/healthz', expectBodyRegex: '^o', headers: { 'X-A': '1', 'X-B': '2' } });
    expect(b?.http?.expectBody).toBeUndefined();
    expect(b).toMatchObject({ fall: 5 });
  });

  it("lets a backend turn its pool's check off, or have a check of its own in a pool without one", () => {
    expect(checks((c) => { c.pools.web.backends[0].healthCheck = { enabled: false }; }).map((s) => s.key)).toEqual(['web/10.1.0.2']);
    expect(
      checks((c) => {
        delete c.pools.web.healthCheck;
        c.pools.web.backends[1].healthCheck = { kind: 'icmp' };
      }),
    ).toMatchObject([{ key: 'web/10.1.0.2', kind: 'icmp', icmp: { payloadSize: DEFAULT_ICMP_PAYLOAD }, target: { address: '10.1.0.2' } }]);
  });

  it('uses 80 and 443 for http and https when the VIPs give no single port', () => {
    const doc = (kind: string) => (c: Json): void => {
      delete c.vips[0].port;
      hc(c).kind = kind;
    };
    expect(checks(doc('http'))[0]?.target).toEqual({ address: '10.1.0.1', port: 80 });
    expect(checks(doc('https'))[0]).toMatchObject({ target: { address: '10.1.0.1', port: 443 }, http: { tls: { verify: DEFAULT_HTTP.verify } } });
    expect(checks((c) => { hc(c).kind = 'http'; hc(c).port = 8080; })[0]?.target).toEqual({ address: '10.1.0.1', port: 8080 });
  });

  it('aims tunnelled checks at the VIP (its port unless one is given)', () => {
    const [a] = checks((c) => { hc(c).tunnelled = true; });
    expect(a).toMatchObject({ key: 'web/10.1.0.1', backend: '10.1.0.1', target: { address: '192.0.2.10', port: 80 }, tunnel: { vip: '192.0.2.10:tcp:80', vipAddress: '192.0.2.10' } });
    const [named] = checks((c) => {
      c.vips.push({ name: 'www-tls', address: '192.0.2.10', protocol: 'tcp', port: 443, pool: 'web' });
      Object.assign(hc(c), { tunnelled: true, vip: 'www-tls', kind: 'tcp' });
    });
    expect(named).toMatchObject({ target: { address: '192.0.2.10', port: 443 }, tunnel: { vip: 'www-tls' } });
  });

  it('resolves udp payloads and expectations, and exec commands', () => {
    const [udp] = checks((c) => { hc(c).kind = 'udp'; hc(c).udp = { sendHex: '0x00 01:ff', expectRegex: '^ok' }; });
    expect(udp?.udp).toEqual({ payloadHex: '0001ff', expect: { kind: 'regex', source: '^ok' } });
    const [text] = checks((c) => { hc(c).kind = 'udp'; hc(c).udp = { send: 'hi' }; c.pools.web.backends[0].healthCheck = { udp: { sendHex: 'ff' } }; });
    expect(text?.udp).toEqual({ payloadHex: 'ff', expect: { kind: 'any' } });
    const [exec] = checks((c) => { hc(c).kind = 'exec'; hc(c).exec = { command: '/usr/lib/l4mux/check-db', args: ['-q'], env: { A: '1' } }; hc(c).weightFrom = 'stdout'; });
    expect(exec).toMatchObject({ kind: 'exec', weightFrom: 'stdout', exec: { command: '/usr/lib/l4mux/check-db', args: ['-q'], env: { A: '1' } }, target: { address: '10.1.0.1', port: 80 } });
    // As "nobody" unless told otherwise; by name or uid, from /etc/passwd.
    const nobody = /^nobody:[^:]*:(\d+):(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8'));
    expect(nobody).not.toBeNull();
    expect(exec?.exec?.user).toEqual({ name: 'nobody', uid: Number(nobody![1]), gid: Number(nobody![2]) });
    const [byUid] = checks((c) => { hc(c).kind = 'exec'; hc(c).exec = { command: '/a', user: nobody![1] }; });
    expect(byUid?.exec?.user).toEqual({ name: 'nobody', uid: Number(nobody![1]), gid: Number(nobody![2]) });
  });

  it('keys IPv6 backends by their canonical address', () => {
    const [v6] = checks((c) => { c.pools.web.backends = [{ address: 'FD00:0:0::0A' }]; });
    expect(v6).toMatchObject({ key: 'web/fd00::a', backend: 'fd00::a', target: { address: 'fd00::a', port: 80 } });
  });
});

describe('mergeHealthCheck', () => {
  it('does not modify its inputs and replaces lists', () => {
    const pool = { kind: 'exec' as const, exec: { command: '/a', args: ['1'], env: { A: '1' } } };
    const backend = { exec: { args: ['2'], env: { B: '2' } } };
    expect(mergeHealthCheck(pool, backend)).toEqual({ kind: 'exec', exec: { command: '/a', args: ['2'], env: { A: '1', B: '2' } } });
    expect(pool.exec.args).toEqual(['1']);
  });
});

describe('healthCheck in l4mux.schema.json', () => {
  const defs = healthSchemaDefs() as Json;

  it('says the same defaults and limits as defaults.ts', () => {
    const p = defs.healthCheck.properties;
    expect(p.enabled.default).toBe(DEFAULT_HEALTH.enabled);
    expect(p.kind.default).toBe(DEFAULT_HEALTH.kind);
    expect(p.tunnelled.default).toBe(DEFAULT_HEALTH.tunnelled);
    expect(p.weightFrom.default).toBe(DEFAULT_HEALTH.weightFrom);
    for (const key of ['interval', 'timeout', 'rise', 'fall', 'jitter'] as const) {
      expect(p[key].default, key).toBe(DEFAULT_HEALTH[key]);
      expect([p[key].minimum, p[key].maximum], key).toEqual([LIMITS[key].min, LIMITS[key].max]);
    }
    const http = defs.healthCheckHttp.properties;
    expect([http.method.default, http.path.default, http.expectStatus.default, http.weightHeader.default, http.tls.properties.verify.default]).toEqual([
      DEFAULT_HTTP.method,
      DEFAULT_HTTP.path,
      DEFAULT_HTTP.expectStatus,
      DEFAULT_HTTP.weightHeader,
      DEFAULT_HTTP.verify,
    ]);
    const icmp = defs.healthCheckIcmp.properties.payloadSize;
    expect([icmp.default, icmp.minimum, icmp.maximum]).toEqual([DEFAULT_ICMP_PAYLOAD, LIMITS.icmpPayload.min, LIMITS.icmpPayload.max]);
  });

  it('is part of the config: validateConfig checks health checks and resolves them', () => {
    const doc = base();
    Object.assign(hc(doc), { kind: 'http', interval: 1000, http: { path: '/healthz', expectStatus: '200-399' }, weightFrom: 'header' });
    doc.pools.web.backends[0].healthCheck = { enabled: false };
    const ok = validateConfig(JSON.parse(JSON.stringify(doc)));
    expect(ok.ok, JSON.stringify(ok)).toBe(true);
    if (ok.ok) expect(ok.config.healthChecks.map((c) => c.key)).toEqual(['web/10.1.0.2']);
    hc(doc).interval = 5;
    const bad = validateConfig(JSON.parse(JSON.stringify(doc)));
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors.some((e) => e.startsWith('pools.web.healthCheck.interval: '))).toBe(true);
  });
});
