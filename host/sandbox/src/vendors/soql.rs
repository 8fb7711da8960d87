//! The SOQL subset connectors use: `SELECT fields | COUNT() FROM object [WHERE …]
//! [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], …] [LIMIT n] [OFFSET n]`, with AND/OR/NOT,
//! parentheses, comparison operators, LIKE, IN/NOT IN, and string, number, boolean, null,
//! date and datetime literals. Parent fields (`Account.Name`) may be selected.

use std::cmp::Ordering;

use serde_json::Value;

use crate::clock::parse_iso;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    /// Date or datetime, as epoch milliseconds.
    Time(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: String,
        op: Op,
        value: Literal,
    },
    In {
        field: String,
        values: Vec<Literal>,
        negated: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderBy {
    pub field: String,
    pub desc: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// Selected field paths as written (`Name`, `Account.Name`); empty for `COUNT()`.
    pub fields: Vec<String>,
    pub count: bool,
    pub object: String,
    pub filter: Option<Expr>,
    pub order: Vec<OrderBy>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Time(i64),
    Sym(&'static str),
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
                    Some('\\') => {
                        let n = c.get(i + 1).ok_or("unterminated escape")?;
                        v.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            other => *other,
                        });
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
        } else if ch.is_ascii_digit()
            || (ch == '-' && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < c.len()
                && (c[i].is_ascii_alphanumeric() || matches!(c[i], '.' | ':' | '-' | '+'))
            {
                i += 1;
            }
            let text: String = c[start..i].iter().collect();
            let looks_like_date =
                text.len() >= 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
            if looks_like_date {
                let t = parse_iso(&text)
                    .ok_or_else(|| format!("invalid date or datetime literal: {text}"))?;
                out.push(Tok::Time(t));
            } else {
                let n: f64 = text
                    .parse()
                    .map_err(|_| format!("unexpected token: '{text}'"))?;
                out.push(Tok::Num(n));
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || matches!(c[i], '_' | '.')) {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else {
            let two: String = c[i..(i + 2).min(c.len())].iter().collect();
            let sym = match two.as_str() {
                "!=" => Some("!="),
                "<>" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(s) = sym {
                out.push(Tok::Sym(s));
                i += 2;
                continue;
            }
            let one = match ch {
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '*' => "*",
                _ => return Err(format!("unexpected token: '{ch}'")),
            };
            out.push(Tok::Sym(one));
            i += 1;
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(k))
    }

    fn eat_keyword(&mut self, k: &str) -> bool {
        if self.keyword(k) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, k: &str) -> Result<(), String> {
        if self.eat_keyword(k) {
            Ok(())
        } else {
            Err(format!("unexpected token: {}", self.describe()))
        }
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "<EOF>".into(),
            Some(Tok::Ident(s)) | Some(Tok::Str(s)) => format!("'{s}'"),
            Some(Tok::Num(n)) => format!("'{n}'"),
            Some(Tok::Time(_)) => "a date literal".into(),
            Some(Tok::Sym(s)) => format!("'{s}'"),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(format!("unexpected token: {}", self.describe()))
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Literal::Str(s)),
            Some(Tok::Num(n)) => Ok(Literal::Num(n)),
            Some(Tok::Time(t)) => Ok(Literal::Time(t)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("null") => Ok(Literal::Null),
            _ => {
                self.pos -= 1;
                Err(format!("unexpected token: {}", self.describe()))
            }
        }
    }

    fn or_expr(&mut self) -> Result<Expr, String> {
        let mut left = self.and_expr()?;
        while self.eat_keyword("OR") {
            left = Expr::Or(Box::new(left), Box::new(self.and_expr()?));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.eat_keyword("AND") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat_sym("(") {
            let e = self.or_expr()?;
            if !self.eat_sym(")") {
                return Err(format!(
                    "expecting a right parentheses, found {}",
                    self.describe()
                ));
            }
            return Ok(e);
        }
        let field = self.ident()?;
        if self.eat_keyword("NOT") {
            self.expect_keyword("IN")?;
            return Ok(Expr::In {
                field,
                values: self.list()?,
                negated: true,
            });
        }
        if self.eat_keyword("IN") {
            return Ok(Expr::In {
                field,
                values: self.list()?,
                negated: false,
            });
        }
        if self.eat_keyword("LIKE") {
            return Ok(Expr::Cmp {
                field,
                op: Op::Like,
                value: self.literal()?,
            });
        }
        let op = match self.next() {
            Some(Tok::Sym("=")) => Op::Eq,
            Some(Tok::Sym("!=")) => Op::Ne,
            Some(Tok::Sym("<")) => Op::Lt,
            Some(Tok::Sym("<=")) => Op::Le,
            Some(Tok::Sym(">")) => Op::Gt,
            Some(Tok::Sym(">=")) => Op::Ge,
            _ => {
                self.pos -= 1;
                return Err(format!("unexpected token: {}", self.describe()));
            }
        };
        Ok(Expr::Cmp {
            field,
            op,
            value: self.literal()?,
        })
    }

    fn list(&mut self) -> Result<Vec<Literal>, String> {
        if !self.eat_sym("(") {
            return Err(format!(
                "expecting a left parentheses, found {}",
                self.describe()
            ));
        }
        let mut v = vec![self.literal()?];
        while self.eat_sym(",") {
            v.push(self.literal()?);
        }
        if !self.eat_sym(")") {
            return Err(format!(
                "expecting a right parentheses, found {}",
                self.describe()
            ));
        }
        Ok(v)
    }

    fn number(&mut self) -> Result<u64, String> {
        match self.next() {
            Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 => Ok(n as u64),
            _ => {
                self.pos -= 1;
                Err(format!("unexpected token: {}", self.describe()))
            }
        }
    }
}

pub(crate) fn parse(q: &str) -> Result<Query, String> {
    let mut p = Parser {
        toks: tokenize(q)?,
        pos: 0,
    };
    p.expect_keyword("SELECT")?;
    let mut fields = Vec::new();
    let mut count = false;
    loop {
        if p.keyword("COUNT") && p.toks.get(p.pos + 1) == Some(&Tok::Sym("(")) {
            p.pos += 2;
            if !p.eat_sym(")") {
                return Err("COUNT() takes no field in this API".into());
            }
            count = true;
        } else {
            fields.push(p.ident()?);
        }
        if !p.eat_sym(",") {
            break;
        }
    }
    if count && !fields.is_empty() {
        return Err("COUNT() cannot be combined with other fields".into());
    }
    p.expect_keyword("FROM")?;
    let object = p.ident()?;
    let filter = if p.eat_keyword("WHERE") {
        Some(p.or_expr()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if p.eat_keyword("ORDER") {
        p.expect_keyword("BY")?;
        loop {
            let field = p.ident()?;
            let desc = if p.eat_keyword("DESC") {
                true
            } else {
                p.eat_keyword("ASC");
                false
            };
            // Salesforce sorts nulls first by default.
            let mut nulls_last = false;
            if p.eat_keyword("NULLS") {
                nulls_last = if p.eat_keyword("LAST") {
                    true
                } else {
                    p.expect_keyword("FIRST")?;
                    false
                };
            }
            order.push(OrderBy {
                field,
                desc,
                nulls_last,
            });
            if !p.eat_sym(",") {
                break;
            }
        }
    }
    let limit = if p.eat_keyword("LIMIT") {
        Some(p.number()?)
    } else {
        None
    };
    let offset = if p.eat_keyword("OFFSET") {
        Some(p.number()?)
    } else {
        None
    };
    if p.peek().is_some() {
        return Err(format!("unexpected token: {}", p.describe()));
    }
    Ok(Query {
        fields,
        count,
        object,
        filter,
        order,
        limit,
        offset,
    })
}

/// Field names mentioned in the WHERE clause.
pub(crate) fn filter_fields(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            filter_fields(a, out);
            filter_fields(b, out);
        }
        Expr::Not(a) => filter_fields(a, out),
        Expr::Cmp { field, .. } | Expr::In { field, .. } => out.push(field.clone()),
    }
}

/// Compares a record value with a literal; `None` when they do not compare (nulls, types).
fn compare(v: &Value, lit: &Literal) -> Option<Ordering> {
    match (v, lit) {
        (Value::Null, _) | (_, Literal::Null) => None,
        (Value::String(s), Literal::Time(t)) => parse_iso(s).map(|x| x.cmp(t)),
        (Value::String(s), Literal::Str(l)) => Some(s.to_lowercase().cmp(&l.to_lowercase())),
        (Value::Number(n), Literal::Num(l)) => n.as_f64().and_then(|x| x.partial_cmp(l)),
        (Value::Bool(b), Literal::Bool(l)) => Some(b.cmp(l)),
        (Value::String(s), Literal::Num(l)) => s.parse::<f64>().ok().and_then(|x| x.partial_cmp(l)),
        _ => None,
    }
}

fn like(value: &str, pattern: &str) -> bool {
    fn go(v: &[char], p: &[char]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some('%') => (0..=v.len()).any(|i| go(&v[i..], &p[1..])),
            Some('_') => !v.is_empty() && go(&v[1..], &p[1..]),
            Some(c) => v.first().is_some_and(|x| x == c) && go(&v[1..], &p[1..]),
        }
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&v, &p)
}

/// Evaluates a filter with `get` returning a field's value (JSON null when unset).
pub(crate) fn eval(e: &Expr, get: &dyn Fn(&str) -> Value) -> bool {
    match e {
        Expr::And(a, b) => eval(a, get) && eval(b, get),
        Expr::Or(a, b) => eval(a, get) || eval(b, get),
        Expr::Not(a) => !eval(a, get),
        Expr::In {
            field,
            values,
            negated,
        } => {
            let v = get(field);
            let hit = values
                .iter()
                .any(|l| compare(&v, l) == Some(Ordering::Equal));
            hit != *negated
        }
        Expr::Cmp { field, op, value } => {
            let v = get(field);
            match op {
                Op::Eq if *value == Literal::Null => v.is_null(),
                Op::Ne if *value == Literal::Null => !v.is_null(),
                Op::Like => match (&v, value) {
                    (Value::String(s), Literal::Str(p)) => like(s, p),
                    _ => false,
                },
                _ => match compare(&v, value) {
                    None => *op == Op::Ne && !v.is_null(),
                    Some(o) => match op {
                        Op::Eq => o == Ordering::Equal,
                        Op::Ne => o != Ordering::Equal,
                        Op::Lt => o == Ordering::Less,
                        Op::Le => o != Ordering::Greater,
                        Op::Gt => o == Ordering::Greater,
                        Op::Ge => o != Ordering::Less,
                        Op::Like => false,
                    },
                },
            }
        }
    }
}

/// Orders two field values as SOQL does (nulls first unless asked otherwise).
pub(crate) fn order_values(a: &Value, b: &Value, o: &OrderBy) -> Ordering {
    let base = match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => {
            return if o.nulls_last {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        (_, Value::Null) => {
            return if o.nulls_last {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => match (parse_iso(x), parse_iso(y)) {
            (Some(p), Some(q)) => p.cmp(&q),
            _ => x.to_lowercase().cmp(&y.to_lowercase()),
        },
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    };
    if o.desc { base.reverse() } else { base }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_incremental_query_shape() {
        let q = parse("SELECT Id, Name, Account.Name FROM Contact WHERE SystemModstamp > 2024-01-01T00:00:00Z AND (Email LIKE '%@acme.com' OR Name IN ('A','B')) ORDER BY SystemModstamp ASC NULLS LAST LIMIT 10 OFFSET 5").unwrap();
        assert_eq!(q.fields, ["Id", "Name", "Account.Name"]);
        assert_eq!(q.object, "Contact");
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, Some(5));
        assert!(q.order[0].nulls_last && !q.order[0].desc);
        let rec = json!({"SystemModstamp": "2024-02-01T00:00:00.000+0000", "Email": "x@ACME.com", "Name": "Z"});
        let get = |f: &str| rec.get(f).cloned().unwrap_or(Value::Null);
        assert!(eval(q.filter.as_ref().unwrap(), &get));
    }

    #[test]
    fn rejects_malformed_queries_with_a_reason() {
        assert!(
            parse("SELECT Id FORM Account")
                .unwrap_err()
                .contains("FORM")
        );
        assert!(parse("SELECT FROM Account").is_err());
        assert!(
            parse("SELECT Id FROM Account WHERE Name = 'x")
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(parse("SELECT COUNT() FROM Account").unwrap().count);
    }

    #[test]
    fn null_comparisons_follow_soql() {
        let q = parse("SELECT Id FROM Lead WHERE Email != null").unwrap();
        let rec = json!({"Email": null});
        assert!(!eval(q.filter.as_ref().unwrap(), &|f: &str| rec
            .get(f)
            .cloned()
            .unwrap_or(Value::Null)));
        let q = parse("SELECT Id FROM Lead WHERE Email = null").unwrap();
        assert!(eval(q.filter.as_ref().unwrap(), &|f: &str| rec
            .get(f)
            .cloned()
            .unwrap_or(Value::Null)));
    }
}
