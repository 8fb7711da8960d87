//! The OData `$filter` subset Dataverse and Partner Center clients send: `eq ne gt ge lt le`,
//! `and`/`or`/`not`, parentheses, `contains`/`startswith`/`endswith`, nested paths
//! (`customerProfile/address/country`) and `any` lambdas (`team/any(t:t/email eq 'x')`), over
//! strings, numbers, booleans, null, GUIDs and datetimes.

use std::cmp::Ordering;

use serde_json::Value;

use crate::clock::parse_iso;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Time(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Cmp {
        path: Vec<String>,
        op: String,
        value: Lit,
    },
    Func {
        name: String,
        path: Vec<String>,
        value: String,
    },
    Any {
        path: Vec<String>,
        var: String,
        body: Box<Filter>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Sym(char),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\'') if c.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(x) => {
                        v.push(*x);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if matches!(ch, '(' | ')' | ',' | ':') {
            out.push(Tok::Sym(ch));
            i += 1;
        } else {
            let start = i;
            while i < c.len() && !c[i].is_whitespace() && !matches!(c[i], '(' | ')' | ',' | '\'') {
                // `:` separates a lambda variable but also appears in datetimes.
                if c[i] == ':' && !c[start].is_ascii_digit() {
                    break;
                }
                i += 1;
            }
            let w: String = c[start..i].iter().collect();
            match w.parse::<f64>() {
                Ok(n)
                    if !w.contains('-') || w.starts_with('-') && w[1..].parse::<f64>().is_ok() =>
                {
                    out.push(Tok::Num(n))
                }
                _ => out.push(Tok::Word(w)),
            }
        }
    }
    Ok(out)
}

struct Parser {
    t: Vec<Tok>,
    p: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.t.get(self.p), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn sym(&mut self, s: char) -> bool {
        if self.t.get(self.p) == Some(&Tok::Sym(s)) {
            self.p += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: char) -> Result<(), String> {
        if self.sym(s) {
            Ok(())
        } else {
            Err(format!("expected '{s}' at position {}", self.p))
        }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut l = self.and()?;
        while self.peek_word("or") {
            self.p += 1;
            l = Filter::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut l = self.unary()?;
        while self.peek_word("and") {
            self.p += 1;
            l = Filter::And(Box::new(l), Box::new(self.unary()?));
        }
        Ok(l)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_word("not") {
            self.p += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.sym('(') {
            let f = self.or()?;
            self.expect(')')?;
            return Ok(f);
        }
        let word = match self.t.get(self.p).cloned() {
            Some(Tok::Word(w)) => w,
            other => return Err(format!("expected a property or function, found {other:?}")),
        };
        self.p += 1;
        let lower = word.to_ascii_lowercase();
        if matches!(lower.as_str(), "contains" | "startswith" | "endswith") && self.sym('(') {
            let path = match self.t.get(self.p).cloned() {
                Some(Tok::Word(w)) => w,
                other => return Err(format!("{lower}() needs a property first, found {other:?}")),
            };
            self.p += 1;
            self.expect(',')?;
            let value = match self.t.get(self.p).cloned() {
                Some(Tok::Str(s)) => s,
                other => return Err(format!("{lower}() needs a string literal, found {other:?}")),
            };
            self.p += 1;
            self.expect(')')?;
            return Ok(Filter::Func {
                name: lower,
                path: split_path(&path),
                value,
            });
        }
        // `path/any(v:body)`
        if let Some(base) = word
            .strip_suffix("/any")
            .or_else(|| word.strip_suffix("/ANY"))
        {
            self.expect('(')?;
            let var = match self.t.get(self.p).cloned() {
                Some(Tok::Word(w)) => w,
                other => return Err(format!("any() needs a variable, found {other:?}")),
            };
            self.p += 1;
            self.expect(':')?;
            let body = self.or()?;
            self.expect(')')?;
            return Ok(Filter::Any {
                path: split_path(base),
                var,
                body: Box::new(body),
            });
        }
        let op = match self.t.get(self.p).cloned() {
            Some(Tok::Word(o))
                if matches!(
                    o.to_ascii_lowercase().as_str(),
                    "eq" | "ne" | "gt" | "ge" | "lt" | "le"
                ) =>
            {
                o.to_ascii_lowercase()
            }
            other => {
                return Err(format!(
                    "expected a comparison operator after {word}, found {other:?}"
                ));
            }
        };
        self.p += 1;
        let value = match self.t.get(self.p).cloned() {
            Some(Tok::Str(s)) => Lit::Str(s),
            Some(Tok::Num(n)) => Lit::Num(n),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Lit::Null,
            Some(Tok::Word(w)) => match parse_iso(&w) {
                Some(t) => Lit::Time(t),
                // GUIDs are written unquoted.
                None if w.len() == 36 && w.chars().filter(|c| *c == '-').count() == 4 => {
                    Lit::Str(w)
                }
                None => return Err(format!("unrecognised literal {w}")),
            },
            other => return Err(format!("expected a literal, found {other:?}")),
        };
        self.p += 1;
        Ok(Filter::Cmp {
            path: split_path(&word),
            op,
            value,
        })
    }
}

fn split_path(p: &str) -> Vec<String> {
    p.split('/').map(str::to_string).collect()
}

pub(crate) fn parse(s: &str) -> Result<Filter, String> {
    let mut p = Parser {
        t: tokenize(s)?,
        p: 0,
    };
    let f = p.or()?;
    if p.p != p.t.len() {
        return Err(format!("unexpected text after the filter at token {}", p.p));
    }
    Ok(f)
}

/// Every top-level property a filter reads.
pub(crate) fn properties(f: &Filter, out: &mut Vec<String>) {
    match f {
        Filter::And(a, b) | Filter::Or(a, b) => {
            properties(a, out);
            properties(b, out);
        }
        Filter::Not(a) => properties(a, out),
        Filter::Cmp { path, .. } | Filter::Func { path, .. } | Filter::Any { path, .. } => {
            out.push(path[0].clone())
        }
    }
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = match cur.get(p) {
            Some(x) => x,
            None => match cur
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(p)))
            {
                Some((_, x)) => x,
                None => return &Value::Null,
            },
        };
    }
    cur
}

fn compare(v: &Value, l: &Lit) -> Option<Ordering> {
    match (v, l) {
        (Value::String(s), Lit::Time(t)) => parse_iso(s).map(|x| x.cmp(t)),
        (Value::String(s), Lit::Str(x)) => Some(s.to_lowercase().cmp(&x.to_lowercase())),
        (Value::Number(n), Lit::Num(x)) => n.as_f64()?.partial_cmp(x),
        (Value::String(s), Lit::Num(x)) => s.parse::<f64>().ok()?.partial_cmp(x),
        (Value::Bool(b), Lit::Bool(x)) => Some(b.cmp(x)),
        _ => None,
    }
}

/// Evaluates `f` against a JSON record; `scope` binds lambda variables.
pub(crate) fn eval(f: &Filter, record: &Value) -> bool {
    eval_in(f, record, &[])
}

fn eval_in(f: &Filter, record: &Value, scope: &[(&str, &Value)]) -> bool {
    let resolve = |path: &[String]| -> Value {
        if let Some((_, bound)) = scope.iter().rev().find(|(n, _)| *n == path[0]) {
            return lookup(bound, &path[1..]).clone();
        }
        lookup(record, path).clone()
    };
    match f {
        Filter::And(a, b) => eval_in(a, record, scope) && eval_in(b, record, scope),
        Filter::Or(a, b) => eval_in(a, record, scope) || eval_in(b, record, scope),
        Filter::Not(a) => !eval_in(a, record, scope),
        Filter::Func { name, path, value } => {
            let v = resolve(path);
            let Some(s) = v.as_str() else { return false };
            let (s, x) = (s.to_lowercase(), value.to_lowercase());
            match name.as_str() {
                "contains" => s.contains(&x),
                "startswith" => s.starts_with(&x),
                _ => s.ends_with(&x),
            }
        }
        Filter::Any { path, var, body } => {
            let v = resolve(path);
            v.as_array().is_some_and(|items| {
                items.iter().any(|item| {
                    let mut inner: Vec<(&str, &Value)> = scope.to_vec();
                    inner.push((var.as_str(), item));
                    eval_in(body, record, &inner)
                })
            })
        }
        Filter::Cmp { path, op, value } => {
            let v = resolve(path);
            if *value == Lit::Null {
                return match op.as_str() {
                    "eq" => v.is_null(),
                    "ne" => !v.is_null(),
                    _ => false,
                };
            }
            match compare(&v, value) {
                None => op == "ne",
                Some(o) => match op.as_str() {
                    "eq" => o == Ordering::Equal,
                    "ne" => o != Ordering::Equal,
                    "gt" => o == Ordering::Greater,
                    "ge" => o != Ordering::Less,
                    "lt" => o == Ordering::Less,
                    _ => o != Ordering::Greater,
                },
            }
        }
    }
}

/// Parses `$orderby` (`a desc, b`) into `(path, descending)` pairs.
pub(crate) fn parse_orderby(s: &str) -> Vec<(Vec<String>, bool)> {
    s.split(',')
        .filter_map(|part| {
            let mut it = part.split_whitespace();
            let field = it.next()?;
            let desc = it.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
            Some((split_path(field), desc))
        })
        .collect()
}

pub(crate) fn order(a: &Value, b: &Value, keys: &[(Vec<String>, bool)]) -> Ordering {
    for (path, desc) in keys {
        let (x, y) = (lookup(a, path), lookup(b, path));
        let o = match (x, y) {
            (Value::Number(p), Value::Number(q)) => p
                .as_f64()
                .partial_cmp(&q.as_f64())
                .unwrap_or(Ordering::Equal),
            (Value::String(p), Value::String(q)) => match (parse_iso(p), parse_iso(q)) {
                (Some(s), Some(t)) => s.cmp(&t),
                _ => p.to_lowercase().cmp(&q.to_lowercase()),
            },
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            _ => Ordering::Equal,
        };
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_paths_lambdas_and_functions() {
        let r = json!({"status": "New", "customerProfile": {"address": {"country": "US"}}, "team": [{"email": "r2d2@contoso.com"}], "name": "Contoso deal", "createdDateTime": "2026-01-02T00:00:00Z"});
        for (f, want) in [
            (
                "status eq 'New' and customerProfile/address/country eq 'US'",
                true,
            ),
            ("team/any(t:t/email eq 'r2d2@contoso.com')", true),
            ("team/any(t:t/email eq 'c3po@contoso.com')", false),
            ("(status eq 'Closed' or startswith(name, 'contoso'))", true),
            ("createdDateTime gt 2026-01-01T00:00:00Z", true),
            ("not (status eq 'New')", false),
            ("modifiedon eq null", true),
        ] {
            assert_eq!(eval(&parse(f).unwrap(), &r), want, "{f}");
        }
        assert!(parse("status eq").is_err());
        assert!(parse("status zz 'x'").is_err());
    }
}
