//! The GraphQL subset monday.com clients send: one query or mutation with aliases, arguments
//! (literals and `$variables`), nested selections, comments, named fragments (monday's own
//! client uses them) and inline fragments. Directives are refused with a clear error rather
//! than misread.

use std::collections::HashMap;

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub alias: Option<String>,
    pub name: String,
    pub args: Map<String, Value>,
    pub selection: Vec<Field>,
    /// 1-based line and column, for error `locations`.
    pub line: usize,
    pub column: usize,
}

impl Field {
    pub(crate) fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }

    pub(crate) fn arg(&self, name: &str) -> Option<&Value> {
        self.args.get(name).filter(|v| !v.is_null())
    }

    pub(crate) fn child(&self, name: &str) -> Option<&Field> {
        self.selection.iter().find(|f| f.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Operation {
    pub mutation: bool,
    pub fields: Vec<Field>,
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    vars: &'a HashMap<String, Value>,
}

impl Lexer<'_> {
    fn skip(&mut self) {
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => self.pos += 1,
                b'#' => {
                    while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn location(&self, at: usize) -> (usize, usize) {
        let before = &self.s[..at.min(self.s.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = at
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|p| p + 1)
                .unwrap_or(0)
            + 1;
        (line, column)
    }

    fn err(&self, what: &str) -> String {
        let (l, c) = self.location(self.pos);
        let found = match self.s.get(self.pos) {
            None => "end of document".to_string(),
            Some(b) => format!("\"{}\"", *b as char),
        };
        format!("Parse error on {found} at [{l}, {c}]: {what}")
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", b as char)))
        }
    }

    fn name(&mut self) -> Result<String, String> {
        self.skip();
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_')
        {
            self.pos += 1;
        }
        if start == self.pos || self.s[start].is_ascii_digit() {
            return Err(self.err("expected a name"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'$') => {
                self.pos += 1;
                let n = self.name()?;
                Ok(self.vars.get(&n).cloned().unwrap_or(Value::Null))
            }
            Some(b'"') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.pos) {
                        None => return Err(self.err("unterminated string")),
                        Some(b'"') => {
                            self.pos += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let esc = *self
                                .s
                                .get(self.pos + 1)
                                .ok_or_else(|| self.err("unterminated escape"))?;
                            self.pos += 2;
                            match esc {
                                b'n' => out.push(b'\n'),
                                b't' => out.push(b'\t'),
                                b'r' => out.push(b'\r'),
                                b'u' => {
                                    let hex = std::str::from_utf8(
                                        self.s
                                            .get(self.pos..self.pos + 4)
                                            .ok_or_else(|| self.err("bad \\u escape"))?,
                                    )
                                    .map_err(|_| self.err("bad \\u escape"))?;
                                    let c = u32::from_str_radix(hex, 16)
                                        .ok()
                                        .and_then(char::from_u32)
                                        .ok_or_else(|| self.err("bad \\u escape"))?;
                                    let mut buf = [0u8; 4];
                                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                                    self.pos += 4;
                                }
                                other => out.push(other),
                            }
                        }
                        Some(b) => {
                            out.push(*b);
                            self.pos += 1;
                        }
                    }
                }
                Ok(Value::String(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(b'[') => {
                self.pos += 1;
                let mut v = Vec::new();
                while !self.eat(b']') {
                    if self.peek().is_none() {
                        return Err(self.err("unterminated list"));
                    }
                    v.push(self.value()?);
                }
                Ok(Value::Array(v))
            }
            Some(b'{') => {
                self.pos += 1;
                let mut m = Map::new();
                while !self.eat(b'}') {
                    let k = self.name()?;
                    self.expect(b':')?;
                    m.insert(k, self.value()?);
                }
                Ok(Value::Object(m))
            }
            Some(b) if b == b'-' || b.is_ascii_digit() => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.s.len()
                    && (self.s[self.pos].is_ascii_digit()
                        || matches!(self.s[self.pos], b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                if let Ok(i) = text.parse::<i64>() {
                    Ok(Value::from(i))
                } else {
                    text.parse::<f64>()
                        .map(Value::from)
                        .map_err(|_| self.err("bad number"))
                }
            }
            Some(_) => {
                let n = self.name()?;
                Ok(match n.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    // Enum values travel as strings.
                    _ => Value::String(n),
                })
            }
            None => Err(self.err("expected a value")),
        }
    }

    fn selection(&mut self) -> Result<Vec<Field>, String> {
        self.expect(b'{')?;
        let mut out = Vec::new();
        while !self.eat(b'}') {
            if self.peek() == Some(b'.') {
                if self.s.get(self.pos..self.pos + 3) != Some(b"...") {
                    return Err(self.err("expected '...'"));
                }
                self.pos += 3;
                self.skip();
                let (line, column) = self.location(self.pos);
                let name = self.name()?;
                if name == "on" {
                    // Inline fragment: `... on Type { fields }` — its fields join this selection.
                    self.name()?;
                    out.extend(self.selection()?);
                } else {
                    out.push(Field {
                        alias: None,
                        name: format!("...{name}"),
                        args: Map::new(),
                        selection: Vec::new(),
                        line,
                        column,
                    });
                }
                continue;
            }
            if self.peek().is_none() {
                return Err(self.err("unterminated selection set"));
            }
            self.skip();
            let (line, column) = self.location(self.pos);
            let first = self.name()?;
            let (alias, name) = if self.eat(b':') {
                (Some(first), self.name()?)
            } else {
                (None, first)
            };
            let mut args = Map::new();
            if self.eat(b'(') {
                while !self.eat(b')') {
                    let k = self.name()?;
                    self.expect(b':')?;
                    args.insert(k, self.value()?);
                }
            }
            if self.peek() == Some(b'@') {
                return Err(self.err("directives are not supported by the weft sandbox"));
            }
            let selection = if self.peek() == Some(b'{') {
                self.selection()?
            } else {
                Vec::new()
            };
            out.push(Field {
                alias,
                name,
                args,
                selection,
                line,
                column,
            });
        }
        Ok(out)
    }
}

/// Replaces `...Name` spreads with the fragment's fields, recursively.
fn expand(
    fields: Vec<Field>,
    fragments: &HashMap<String, Vec<Field>>,
    depth: usize,
) -> Result<Vec<Field>, String> {
    if depth > 16 {
        return Err("fragments nest too deeply (or spread themselves)".into());
    }
    let mut out = Vec::new();
    for f in fields {
        if let Some(name) = f.name.strip_prefix("...") {
            let body = fragments
                .get(name)
                .ok_or_else(|| format!("Fragment {name} was used, but not defined"))?;
            out.extend(expand(body.clone(), fragments, depth + 1)?);
        } else {
            let selection = expand(f.selection, fragments, depth + 1)?;
            out.push(Field { selection, ..f });
        }
    }
    Ok(out)
}

/// Parses one operation (plus any fragments); `variables` substitute `$name` references.
pub(crate) fn parse(doc: &str, variables: &HashMap<String, Value>) -> Result<Operation, String> {
    let mut lx = Lexer {
        s: doc.as_bytes(),
        pos: 0,
        vars: variables,
    };
    let mut fragments: HashMap<String, Vec<Field>> = HashMap::new();
    let mut operation: Option<Operation> = None;
    while lx.peek().is_some() {
        let start = lx.pos;
        if lx.peek() != Some(b'{') && lx.name()? == "fragment" {
            let name = lx.name()?;
            if lx.name()? != "on" {
                return Err(lx.err("expected 'on' after the fragment name"));
            }
            lx.name()?;
            let selection = lx.selection()?;
            fragments.insert(name, selection);
            continue;
        }
        lx.pos = start;
        if operation.is_some() {
            return Err(lx.err("only one operation per request is supported"));
        }
        operation = Some(parse_operation(&mut lx)?);
    }
    let op = operation.ok_or("the document holds no query or mutation")?;
    Ok(Operation {
        mutation: op.mutation,
        fields: expand(op.fields, &fragments, 0)?,
    })
}

fn parse_operation(lx: &mut Lexer<'_>) -> Result<Operation, String> {
    let mut mutation = false;
    if lx.peek() != Some(b'{') {
        let kind = lx.name()?;
        match kind.as_str() {
            "query" => {}
            "mutation" => mutation = true,
            "subscription" => return Err("subscriptions are not supported".into()),
            _ => return Err(lx.err("expected query, mutation or {")),
        }
        if lx
            .peek()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        {
            lx.name()?;
        }
        if lx.eat(b'(') {
            // Variable definitions: `$id: ID!, $n: Int = 5`; values come from `variables`.
            while !lx.eat(b')') {
                lx.expect(b'$')?;
                lx.name()?;
                lx.expect(b':')?;
                lx.eat(b'[');
                lx.name()?;
                lx.eat(b'!');
                lx.eat(b']');
                lx.eat(b'!');
                if lx.eat(b'=') {
                    lx.value()?;
                }
            }
        }
    }
    let fields = lx.selection()?;
    Ok(Operation { mutation, fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_aliases_arguments_variables_and_nesting() {
        let vars: HashMap<String, Value> =
            [("board".to_string(), json!(123))].into_iter().collect();
        let op = parse(
            r#"query Items($board: ID!) { b: boards(ids: [$board], limit: 1) { items_page(limit: 2, query_params: {rules: [{column_id: "status", compare_value: [1], operator: any_of}]}) { cursor items { id name } } } } # tail"#,
            &vars,
        )
        .unwrap();
        assert!(!op.mutation);
        let b = &op.fields[0];
        assert_eq!(b.key(), "b");
        assert_eq!(b.args["ids"], json!([123]));
        let page = b.child("items_page").unwrap();
        assert_eq!(page.args["query_params"]["rules"][0]["operator"], "any_of");
        assert_eq!(page.child("items").unwrap().selection.len(), 2);
    }

    #[test]
    fn reports_parse_errors_with_positions() {
        let err = parse("query { boards { id }", &HashMap::new()).unwrap_err();
        assert!(err.starts_with("Parse error"), "{err}");
        assert!(
            parse("{ ...F }", &HashMap::new())
                .unwrap_err()
                .contains("not defined")
        );
        let op = parse("query Me { me { ...UserFields ... on User { account { id } } } }\nfragment UserFields on User { id name email }", &HashMap::new()).unwrap();
        let names: Vec<&str> = op.fields[0]
            .selection
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["id", "name", "email", "account"]);
        assert!(
            parse("{ a } { b }", &HashMap::new())
                .unwrap_err()
                .contains("one operation")
        );
        let m = parse(
            r#"mutation { create_item(board_id: 1, item_name: "A \"quoted\" name") { id } }"#,
            &HashMap::new(),
        )
        .unwrap();
        assert!(m.mutation);
        assert_eq!(m.fields[0].args["item_name"], "A \"quoted\" name");
    }
}
