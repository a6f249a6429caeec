// Vendors sm-crypto's SM3 (the UMD build dist/sm3.js, which defines
// window.sm3(bytes) → hex) into the console's embedded assets, so that the
// console needs no network at run time. The version is pinned by
// package.json and package-lock.json; run `npm ci && npm run vendor` after
// changing it. `--check` fails if the committed file differs from the
// package's (CI runs it).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve('sm-crypto/package.json'));
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const src = readFileSync(join(pkgDir, 'dist', 'sm3.js'), 'utf8');
const header = `/*! sm-crypto ${pkg.version} dist/sm3.js — SM3 (GB/T 32905-2016) — MIT licence, https://www.npmjs.com/package/sm-crypto — vendored by console-tests/vendor-sm3.mjs */\n`;
const out = header + src.trimEnd() + '\n';
const target = join(here, '..', 'gateway', 'console', 'assets', 'vendor', 'sm3.js');

// The vendored code must compute SM3 correctly before it is used
// (GB/T 32905-2016 example 1: "abc").
const sm3 = require(join(pkgDir, 'dist', 'sm3.js'));
const want = '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0';
if (sm3([0x61, 0x62, 0x63]) !== want) {
  console.error('sm-crypto SM3 does not give the standard\'s digest of "abc"');
  process.exit(1);
}

if (process.argv.includes('--check')) {
  let have = '';
  try { have = readFileSync(target, 'utf8'); } catch { /* missing */ }
  if (have !== out) {
    console.error(`${target} is not sm-crypto ${pkg.version}'s dist/sm3.js: run npm run vendor`);
    process.exit(1);
  }
  console.log(`vendored SM3 is sm-crypto ${pkg.version}`);
} else {
  writeFileSync(target, out);
  console.log(`wrote ${target} (sm-crypto ${pkg.version})`);
}
