#!/usr/bin/env node
// Entry point of the `l4mux` executable (package.json "bin": dist/cli/main.js).
import { buildProgram } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`l4mux: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
