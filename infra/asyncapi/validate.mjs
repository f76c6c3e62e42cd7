// Validates an AsyncAPI document: `node validate.mjs <document>`; `make
// asyncapi` runs it on docs/asyncapi.yaml. Versions are pinned in
// package.json and package-lock.json.
//
// 1. The official parser (@asyncapi/parser) with its built-in ruleset: the
//    AsyncAPI JSON Schema of the document's version, $refs, and the
//    spec's own rules (an operation's messages must be its channel's, ...).
//    Every diagnostic is printed.
// 2. Every message example against its message's payload schema (Ajv with
//    formats). The parser's AsyncAPI 3 ruleset does not do this, and the
//    examples are what a reader copies.
//
// It fails (exit 1) on any error, on any warning that is not listed in
// ALLOWED_WARNINGS with its reason, on an example that does not match, and
// on a document that is not AsyncAPI 3.x. A usage or read problem exits 2.
// Nothing is fetched: the document has no remote $refs and the AsyncAPI
// schemas ship with the parser.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';

// Node loads these packages through their CommonJS `main` (they declare no
// `exports`), so they are required rather than imported by name.
const require = createRequire(import.meta.url);
const { Parser, fromFile, DiagnosticSeverity } = require('@asyncapi/parser');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');

// Warnings accepted on purpose: { code, path (a prefix of the diagnostic's
// path joined with '.'), reason }. Each entry must say why the warning does
// not apply here. Empty: docs/asyncapi.yaml is expected to be warning-free.
const ALLOWED_WARNINGS = [];

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

function allowance(diagnostic) {
  const where = diagnostic.path.join('.');
  return ALLOWED_WARNINGS.find(
    (allowed) => allowed.code === diagnostic.code && where.startsWith(allowed.path),
  );
}

function describe(diagnostic) {
  const where = diagnostic.path.length ? diagnostic.path.join('.') : '(document)';
  const start = diagnostic.range?.start;
  const line = start ? `${start.line + 1}:${start.character + 1}` : '-';
  const severity = SEVERITY[diagnostic.severity] ?? String(diagnostic.severity);
  return `${line} ${severity} ${diagnostic.code} at ${where}: ${diagnostic.message}`;
}

/// Checks every example payload of every message; returns the failures.
function exampleFailures(document) {
  // AsyncAPI schemas are JSON Schema draft 07 plus a few keywords of their
  // own (discriminator, externalDocs, deprecated) and the parser's x-parser-*
  // annotations: not strict about unknown keywords.
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  const failures = [];
  for (const message of document.allMessages().all()) {
    const payload = message.payload();
    const examples = message.examples().all();
    if (!payload || examples.length === 0) {
      continue;
    }
    const validate = ajv.compile(payload.json());
    examples.forEach((example, index) => {
      if (!example.hasPayload() || validate(example.payload())) {
        return;
      }
      const label = `message ${message.id()} example ${example.name() ?? index}`;
      for (const error of validate.errors) {
        failures.push(`${label}: payload${error.instancePath} ${error.message}`);
      }
    });
  }
  return failures;
}

async function main(argv) {
  if (argv.length !== 1) {
    console.error('usage: node validate.mjs <asyncapi document>');
    return 2;
  }
  const name = argv[0];
  const file = path.resolve(name);
  if (!existsSync(file)) {
    console.error(`${name}: no such file`);
    return 2;
  }
  const { document, diagnostics } = await fromFile(new Parser(), file).parse();

  let failures = 0;
  for (const diagnostic of diagnostics) {
    let verdict = '';
    if (diagnostic.severity === DiagnosticSeverity.Error) {
      failures += 1;
    } else if (diagnostic.severity === DiagnosticSeverity.Warning) {
      const allowed = allowance(diagnostic);
      if (allowed) {
        verdict = ` [allowed: ${allowed.reason}]`;
      } else {
        failures += 1;
      }
    }
    console.log(`${name}:${describe(diagnostic)}${verdict}`);
  }
  if (document === undefined) {
    console.error(`${name}: not a valid AsyncAPI document (${failures} error(s) or unallowed warning(s))`);
    return 1;
  }
  const version = document.version();
  if (!version.startsWith('3.')) {
    console.error(`${name}: AsyncAPI ${version}; expected 3.x`);
    failures += 1;
  }
  for (const failure of exampleFailures(document)) {
    console.log(`${name}: error example ${failure}`);
    failures += 1;
  }
  if (failures > 0) {
    console.error(`${name}: ${failures} error(s) or unallowed warning(s)`);
    return 1;
  }
  const counts = [
    `${document.channels().length} channel(s)`,
    `${document.operations().length} operation(s)`,
    `${document.messages().length} message(s)`,
  ].join(', ');
  const parser = require('@asyncapi/parser/package.json').version;
  console.log(`${name}: valid AsyncAPI ${version} (${counts}); @asyncapi/parser ${parser}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
