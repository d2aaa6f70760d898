// Validates an AsyncAPI document with the official parser (@asyncapi/parser): exit 1 on any
// error-level diagnostic, warnings and hints printed. Used by scripts/asyncapi-validate.
'use strict';

const fs = require('fs');
const path = require('path');
const { Parser } = require('@asyncapi/parser');

const SEVERITY = ['error', 'warning', 'info', 'hint'];

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node validate.js FILE.yaml');
    return 2;
  }
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    console.error(`${file}: cannot read it (${error.code || error.message})`);
    return 2;
  }
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(text, { source: path.resolve(file) });
  let errors = 0;
  for (const d of diagnostics) {
    const level = SEVERITY[d.severity] || String(d.severity);
    if (d.severity === 0) errors += 1;
    const where = d.path && d.path.length ? d.path.join('.') : '<root>';
    console.log(`${level}: ${where}: ${d.message} [${d.code}]`);
  }
  if (errors > 0 || document === undefined) {
    console.log(`${file}: INVALID (${errors} error(s), ${diagnostics.length - errors} other)`);
    return 1;
  }
  const channels = document.channels().length;
  const operations = document.operations().length;
  const messages = document.components().messages().length;
  console.log(
    `${file}: valid AsyncAPI ${document.version()} (${channels} channels, ${operations} ` +
      `operations, ${messages} messages; ${diagnostics.length} warning/info diagnostics)`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`validator failed: ${error && error.message ? error.message : error}`);
    process.exit(2);
  },
);
