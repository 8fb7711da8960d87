// {{name}}: a weft transform written in JavaScript.
//
// A `map`-like transform: each output record gets the fields the step config names, taken from
// the input record (a dotted path reaches into nested objects), and records lacking a required
// one are rejected, each by its index, while the rest of the batch goes on:
//
//   [[steps]]
//   id = "people"
//   transform = { plugin = "{{name}}", input = "users" }
//   config.fields = { user_id = "id", full_name = "name", city = "address.city" }
//   config.required = ["user_id"]
//
// `weft.js` (written next to this file by `weft plugin new`) turns the handlers below into the
// contract's `transform-api`; `wit/` holds the contract itself.

import * as logging from 'weft:plugin/log@0.2.0';
import { PluginError, reject, transform } from './weft.js';

export const transformApi = transform({ log: logging }, {
  describe() {
    return {
      name: '{{name}}',
      version: '0.1.0',
      description: 'Renames and picks fields; rejects records missing a required one.',
      configSchema: {
        type: 'object',
        required: ['fields'],
        properties: {
          fields: {
            type: 'object',
            description: 'Output field name to input field (a dotted path reaches into nested objects).',
            additionalProperties: { type: 'string' },
          },
          required: {
            type: 'array',
            items: { type: 'string' },
            description: 'Output fields every record must have (not missing, not null).',
          },
        },
      },
      takesLookup: false,
    };
  },

  // Called before a run with the schema of the step's input: a config naming a field the input
  // does not have fails here, naming it, before any data moves.
  outputSchema(config, input) {
    const { fields, required } = settings(config);
    const properties = {};
    for (const [target, from] of Object.entries(fields)) {
      const found = schemaAt(input, from);
      if (found === null) {
        const has = Object.keys(input.properties ?? {}).join(', ');
        throw PluginError.config(`\`${target}\` maps from \`${from}\`, which the input does not have; it has: ${has}`);
      }
      properties[target] = found;
    }
    return { type: 'object', properties, required };
  },

  process({ config, records }) {
    const { fields, required } = settings(config);
    const out = [];
    const rejects = [];
    records.forEach((record, index) => {
      const mapped = {};
      for (const [target, from] of Object.entries(fields)) mapped[target] = valueAt(record, from);
      const missing = required.find((target) => mapped[target] === undefined || mapped[target] === null);
      if (missing !== undefined) {
        rejects.push(reject(index, `required field \`${missing}\` (from \`${fields[missing]}\`) is missing`, fields[missing]));
      } else {
        out.push(mapped);
      }
    });
    return { records: out, rejects };
  },
});

/** The step config, checked: `fields` an object of strings, `required` among its keys. */
function settings(config) {
  const fields = config.fields;
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    throw PluginError.config('`fields` must be a table of output field = "input field"');
  }
  for (const [target, from] of Object.entries(fields)) {
    if (typeof from !== 'string' || from === '') throw PluginError.config(`\`fields.${target}\` must name an input field`);
  }
  const required = config.required ?? [];
  for (const target of required) {
    if (!(target in fields)) throw PluginError.config(`\`required\` names \`${target}\`, which is not one of \`fields\``);
  }
  return { fields, required };
}

/** The value at a dotted path, or undefined. */
function valueAt(record, path) {
  return path.split('.').reduce((value, key) => (value == null ? undefined : value[key]), record);
}

/**
 * The schema of the field at a dotted path: `{}` (anything) where the input schema does not
 * list properties, null where it lists them and the field is not among them.
 */
function schemaAt(schema, path) {
  let current = schema;
  for (const key of path.split('.')) {
    if (!current || typeof current.properties !== 'object') return {};
    if (!(key in current.properties)) return null;
    current = current.properties[key];
  }
  return current;
}
