/**
 * The RFC 8460 §4.4 report schema (test/fixtures/tlsrpt-report.schema.json), compiled once with
 * ajv for the tests that check reports against it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Ajv2020Module from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// ajv and ajv-formats are CommonJS: an ES import gets module.exports, whose `default` is the export.
const Ajv2020 = Ajv2020Module.default;
const addFormats = addFormatsModule.default;

const SCHEMA = JSON.parse(readFileSync(fileURLToPath(new URL('../../test/fixtures/tlsrpt-report.schema.json', import.meta.url)), 'utf8')) as object;

export function tlsRptValidator() {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  return ajv.compile(SCHEMA);
}
