// loadConfigFile on what a careless operator may point it at: a FIFO nobody writes (it used
// to hang, holding a reload and every update queued behind it), /dev/zero (read into memory
// without end), a file past the size limit.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { loadConfigFile, MAX_CONFIG_BYTES } from '../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'l4mux-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadConfigFile limits', () => {
  it('refuses a FIFO at once instead of waiting for a writer', async () => {
    const fifo = join(dir, 'l4mux.json');
    execFileSync('mkfifo', [fifo]);
    expect(await loadConfigFile(fifo)).toEqual({ ok: false, errors: [`${fifo}: a FIFO, not a regular file: l4mux reads its configuration from regular files only`] });
  });

  it('refuses a device such as /dev/zero', async () => {
    expect(await loadConfigFile('/dev/zero')).toEqual({ ok: false, errors: ['/dev/zero: a character device, not a regular file: l4mux reads its configuration from regular files only'] });
  });

  it('refuses a file larger than the limit without reading it', async () => {
    const big = join(dir, 'big.json');
    const fd = openSync(big, 'w');
    ftruncateSync(fd, MAX_CONFIG_BYTES + 1); // sparse: nothing written
    closeSync(fd);
    expect(await loadConfigFile(big)).toEqual({ ok: false, errors: [`${big}: ${MAX_CONFIG_BYTES + 1} bytes, larger than the ${MAX_CONFIG_BYTES} a configuration may have`] });
  });
});
