"""{{name}}: a weft transform written in Python.

A `map`-like transform: each output record gets the fields the step config names, taken from
the input record (a dotted path reaches into nested objects), and records lacking a required
one are rejected, each by its index, while the rest of the batch goes on::

    [[steps]]
    id = "people"
    transform = { plugin = "{{name}}", input = "users" }
    config.fields = { user_id = "id", full_name = "name", city = "address.city" }
    config.required = ["user_id"]

`weft_plugin.py` (written next to this file by `weft plugin new`) turns the class below into
the contract's `transform-api`; `wit/` holds the contract itself.
"""

from weft_plugin import PluginError, Transform, reject


class Plugin(Transform):
    def describe(self):
        return {
            "name": "{{name}}",
            "version": "0.1.0",
            "description": "Renames and picks fields; rejects records missing a required one.",
            "config_schema": {
                "type": "object",
                "required": ["fields"],
                "properties": {
                    "fields": {
                        "type": "object",
                        "description": "Output field name to input field (a dotted path reaches into nested objects).",
                        "additionalProperties": {"type": "string"},
                    },
                    "required": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Output fields every record must have (not missing, not null).",
                    },
                },
            },
            "takes_lookup": False,
        }

    def output_schema(self, config, input, lookup):
        # Called before a run with the schema of the step's input: a config naming a field the
        # input does not have fails here, naming it, before any data moves.
        fields, required = settings(config)
        properties = {}
        for target, source in fields.items():
            found = schema_at(input, source)
            if found is None:
                has = ", ".join(input.get("properties", {}))
                raise PluginError.config(f"`{target}` maps from `{source}`, which the input does not have; it has: {has}")
            properties[target] = found
        return {"type": "object", "properties": properties, "required": required}

    def process(self, config, records, lookup):
        fields, required = settings(config)
        out, rejects = [], []
        for index, record in enumerate(records):
            mapped = {target: value_at(record, source) for target, source in fields.items()}
            missing = next((t for t in required if mapped.get(t) is None), None)
            if missing is not None:
                rejects.append(reject(index, f"required field `{missing}` (from `{fields[missing]}`) is missing", fields[missing]))
            else:
                out.append(mapped)
        return out, rejects


def settings(config):
    """The step config, checked: `fields` a table of strings, `required` among its keys."""
    fields = config.get("fields")
    if not isinstance(fields, dict):
        raise PluginError.config('`fields` must be a table of output field = "input field"')
    for target, source in fields.items():
        if not isinstance(source, str) or not source:
            raise PluginError.config(f"`fields.{target}` must name an input field")
    required = config.get("required", [])
    for target in required:
        if target not in fields:
            raise PluginError.config(f"`required` names `{target}`, which is not one of `fields`")
    return fields, required


def value_at(record, path):
    """The value at a dotted path, or None."""
    value = record
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def schema_at(schema, path):
    """The schema of the field at a dotted path: `{}` (anything) where the input schema does
    not list properties, None where it lists them and the field is not among them."""
    current = schema
    for key in path.split("."):
        properties = current.get("properties") if isinstance(current, dict) else None
        if not isinstance(properties, dict):
            return {}
        if key not in properties:
            return None
        current = properties[key]
    return current


# The class componentize-py instantiates for the exported `transform-api` interface.
TransformApi = Plugin.export()
