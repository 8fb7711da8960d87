// Builds the plugin into a WebAssembly component: `node build.mjs` (what `weft plugin build` runs).
//
// componentize-js embeds a JavaScript engine with plugin.js (and what it imports) preloaded,
// against the weft contract in wit/. weft links the contract's interfaces and WASI without
// any access, but not wasi:http, so the engine's own fetch() support is left out: a plugin
// reaches the network only through weft's `http.send` (see weft.js).
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';

const WORLD = 'transform';
const OUTPUT = 'dist/{{name_snake}}.wasm';

const started = Date.now();
const { component } = await componentize({
  sourcePath: 'plugin.js',
  witPath: 'wit',
  worldName: WORLD,
  // Keeps stdio (console output, errors on stderr), clocks (Date) and random.
  disableFeatures: ['http', 'fetch-event'],
});
await mkdir('dist', { recursive: true });
await writeFile(OUTPUT, component);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`built ${OUTPUT} (${(component.length / 1e6).toFixed(1)} MB) in ${seconds} s`);
