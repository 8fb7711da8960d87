// Builds the example: `node build.mjs` (what `weft plugin build` runs here). Unlike a project
// made by `weft plugin new`, which carries its own wit/ and weft.js, the example builds against
// this repository's contract and helper layer, so it never drifts from them.
import { componentize } from '@bytecodealliance/componentize-js';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';

const OUTPUT = 'dist/js_helpdesk.wasm';

await copyFile('../../../sdk/js/weft.js', 'weft.js');
const started = Date.now();
const { component } = await componentize({
  sourcePath: 'plugin.js',
  witPath: '../../../wit',
  worldName: 'connector',
  disableFeatures: ['http', 'fetch-event'],
});
await mkdir('dist', { recursive: true });
await writeFile(OUTPUT, component);
console.log(`built ${OUTPUT} (${(component.length / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
