"""py-enrich: contact records made consistent, in Python.

For each record: the email is trimmed and lower-cased and its domain derived into
`email_domain`; the phone is reduced to E.164 (`+` and digits, with the default country code
when it has none). A record whose email is present but not an address is rejected by its index
(the rest of the batch goes on); a record without one passes with `email_domain` null.

    [[steps]]
    id = "contacts"
    transform = { plugin = "py-enrich", input = "users" }
    config = { email = "email", phone = "phone", default_country_code = "1" }
"""

import re

from weft_plugin import PluginError, Transform, reject

EMAIL = re.compile(r"^[^@\s]+@([^@\s]+\.[^@\s]+)$")


class Enrich(Transform):
    def describe(self):
        return {
            "name": "py-enrich",
            "version": "0.1.0",
            "description": "Normalises emails and phones and derives email_domain; rejects malformed emails.",
            "config_schema": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    "email": {"type": "string", "description": "The input field holding the email."},
                    "phone": {"type": "string", "description": "The input field holding the phone, if any."},
                    "default_country_code": {"type": "string", "pattern": "^[0-9]{1,3}$",
                                             "description": "For phones written without one (default 1)."},
                },
            },
            "takes_lookup": False,
        }

    def output_schema(self, config, input, lookup):
        email, phone, _ = settings(config)
        properties = dict(input.get("properties", {}))
        for field in filter(None, (email, phone)):
            if "properties" in input and field not in properties:
                raise PluginError.config(
                    f"`{field}` is not a field of the input; it has: {', '.join(properties)}")
        properties[email] = {"type": ["string", "null"], "format": "email"}
        properties["email_domain"] = {"type": ["string", "null"]}
        if phone:
            properties[phone] = {"type": ["string", "null"], "pattern": r"^\+[0-9]{8,15}$"}
        return {**input, "type": "object", "properties": properties}

    def process(self, config, records, lookup):
        email_field, phone_field, country = settings(config)
        out, rejects = [], []
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                rejects.append(reject(index, "the record is not an object"))
                continue
            enriched = dict(record)
            email = record.get(email_field)
            if isinstance(email, str) and email.strip():
                email = email.strip().lower()
                match = EMAIL.match(email)
                if not match:
                    rejects.append(reject(index, f"`{email}` is not an email address", email_field))
                    continue
                enriched[email_field], enriched["email_domain"] = email, match.group(1)
            elif email is None or email == "":
                enriched[email_field], enriched["email_domain"] = None, None
            else:
                rejects.append(reject(index, f"`{email_field}` is not text", email_field))
                continue
            if phone_field:
                enriched[phone_field] = e164(record.get(phone_field), country)
            out.append(enriched)
        return out, rejects


def settings(config):
    email = config.get("email")
    if not isinstance(email, str) or not email:
        raise PluginError.config("`email` must name the input field holding the email")
    phone = config.get("phone")
    if phone is not None and (not isinstance(phone, str) or not phone):
        raise PluginError.config("`phone`, when given, must name the input field holding the phone")
    country = str(config.get("default_country_code", "1"))
    if not re.fullmatch(r"[0-9]{1,3}", country):
        raise PluginError.config(f"`default_country_code` must be 1 to 3 digits, not `{country}`")
    return email, phone, country


def e164(phone, country):
    """`+` and the digits, with `country` in front when the number did not start with `+` or
    `00`; None when nothing plausible (8 to 15 digits) is left."""
    if not isinstance(phone, str):
        return None
    text = phone.strip()
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    elif not text.startswith("+"):
        digits = country + digits.lstrip("0")
    return f"+{digits}" if 8 <= len(digits) <= 15 else None


TransformApi = Enrich.export()
