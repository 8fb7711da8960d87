// Builds tests/guests-js/hostile.js into target/guests-js/hostile_js.wasm, against the repo's
// wit/ and sdk/js/weft.js: `npm ci --prefix tests/guests-js && node tests/guests-js/build.mjs`.
import { componentize } from '@bytecodealliance/componentize-js';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = join(root, 'target', 'guests-js');
await mkdir(out, { recursive: true });
// componentize-js resolves relative imports next to the source: stage both files together.
await copyFile(join(here, 'hostile.js'), join(out, 'hostile.js'));
await copyFile(join(root, 'sdk', 'js', 'weft.js'), join(out, 'weft.js'));
const started = Date.now();
const { component } = await componentize({
  sourcePath: join(out, 'hostile.js'),
  witPath: join(root, 'wit'),
  worldName: 'connector',
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(join(out, 'hostile_js.wasm'), component);
console.log(`built target/guests-js/hostile_js.wasm (${(component.length / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
