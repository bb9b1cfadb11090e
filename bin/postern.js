#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli by `npm run build`.
import { main } from '../dist/src/cli/main.js';
main(process.argv).catch((err) => {
  process.stderr.write(`postern: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
