//! The tests (conditions) of the typed script: match types, comparators, address parts,
//! and each test's arguments (RFC 5228 §5 and the extensions' tests).

use super::CompileError;
use super::ast::*;
use super::matching::{Comparator, MatchType, Rel};
use super::parse::{self, Arg};
use super::validate::{
    R, Split, Takes, V, addr_tag, check_var_name, match_tag, one_str, split, strs,
};

/// RFC 5260 §6: `:index fieldno` and `:last` on header, address and date.
fn index_tag(t: &str) -> Option<Takes> {
    match t {
        "index" => Some(Takes::Num),
        "last" => Some(Takes::Nothing),
        _ => None,
    }
}

impl V {
    pub(super) fn match_of(&self, s: &Split, line: usize, what: &str) -> R<Match> {
        let err = |m: &str| CompileError::new(line, &format!("{what}: {m}"));
        let mut kind = None;
        let mut comparator = Comparator::AsciiCasemap;
        let (mut index, mut last) = (None, false);
        for (t, v) in &s.tags {
            let k = match t.as_str() {
                // RFC 5260 §6.
                "index" => {
                    self.need("index", line, ":index")?;
                    match v {
                        Some(Arg::Number(0)) => return Err(err(":index cannot be zero")),
                        Some(Arg::Number(n)) if index.is_none() => index = Some(*n),
                        _ => return Err(err(":index takes one number")),
                    }
                    continue;
                }
                "last" => {
                    self.need("index", line, ":last")?;
                    last = true;
                    continue;
                }
                "is" => MatchType::Is,
                "contains" => MatchType::Contains,
                "matches" => MatchType::Matches,
                "value" | "count" => {
                    self.need("relational", line, &format!(":{t}"))?;
                    let r = v.as_ref().and_then(one_str).unwrap_or_default();
                    let rel = Rel::parse(&r).ok_or_else(|| {
                        err(&format!(
                            "\"{r}\" is not a relation (gt, ge, lt, le, eq, ne)"
                        ))
                    })?;
                    if t == "value" {
                        MatchType::Value(rel)
                    } else {
                        MatchType::Count(rel)
                    }
                }
                "comparator" => {
                    let name = v.as_ref().and_then(one_str).unwrap_or_default();
                    comparator = Comparator::parse(&name)
                        .ok_or_else(|| err(&format!("unknown comparator \"{name}\"")))?;
                    if comparator == Comparator::AsciiNumeric {
                        self.need(
                            "comparator-i;ascii-numeric",
                            line,
                            "comparator i;ascii-numeric",
                        )?;
                    }
                    continue;
                }
                _ => continue,
            };
            if kind.is_some() {
                return Err(err("more than one match type"));
            }
            kind = Some(k);
        }
        let kind = kind.unwrap_or_default();
        if matches!(kind, MatchType::Contains | MatchType::Matches) && !comparator.has_substring() {
            return Err(err(
                "i;ascii-numeric cannot be used with :contains or :matches",
            ));
        }
        if last && index.is_none() {
            return Err(err(":last needs :index"));
        }
        Ok(Match {
            kind,
            comparator,
            index: index.map(|n| FieldIndex { n, last }),
        })
    }

    fn addr_part(&self, s: &Split, line: usize) -> R<AddrPart> {
        let mut part = None;
        for (t, _) in &s.tags {
            let p = match t.as_str() {
                "all" => AddrPart::All,
                "localpart" => AddrPart::LocalPart,
                "domain" => AddrPart::Domain,
                "user" => AddrPart::User,
                "detail" => AddrPart::Detail,
                _ => continue,
            };
            if matches!(p, AddrPart::User | AddrPart::Detail) {
                self.need("subaddress", line, &format!(":{t}"))?;
            }
            if part.is_some() {
                return Err(CompileError::new(line, "more than one address part"));
            }
            part = Some(p);
        }
        Ok(part.unwrap_or(AddrPart::All))
    }

    pub(super) fn test(&mut self, t: &parse::Test) -> R<Test> {
        let line = t.line;
        let name = t.name.as_str();
        let err = |m: &str| CompileError::new(line, &format!("{name}: {m}"));
        let no_tests = || {
            if t.tests.is_empty() {
                Ok(())
            } else {
                Err(err("takes no nested test"))
            }
        };
        Ok(match name {
            "true" | "false" => {
                no_tests()?;
                if !t.args.is_empty() {
                    return Err(err("takes no arguments"));
                }
                if name == "true" {
                    Test::True
                } else {
                    Test::False
                }
            }
            "not" => {
                if !t.args.is_empty() || t.tests.len() != 1 {
                    return Err(err("takes exactly one test"));
                }
                Test::Not(Box::new(self.test(&t.tests[0])?))
            }
            "allof" | "anyof" => {
                if !t.args.is_empty() || t.tests.is_empty() {
                    return Err(err("takes a list of tests"));
                }
                let ts = t
                    .tests
                    .iter()
                    .map(|x| self.test(x))
                    .collect::<R<Vec<_>>>()?;
                if name == "allof" {
                    Test::AllOf(ts)
                } else {
                    Test::AnyOf(ts)
                }
            }
            "exists" | "mailboxexists" => {
                no_tests()?;
                if name == "mailboxexists" {
                    self.need("mailbox", line, name)?;
                }
                let [a] = t.args.as_slice() else {
                    return Err(err("takes one string list"));
                };
                let l = strs(a).ok_or_else(|| err("takes one string list"))?;
                if name == "exists" {
                    Test::Exists(l)
                } else {
                    Test::MailboxExists(l)
                }
            }
            "size" => {
                no_tests()?;
                match t.args.as_slice() {
                    [Arg::Tag(o), Arg::Number(n)] if o == "over" || o == "under" => Test::Size {
                        over: o == "over",
                        limit: *n,
                    },
                    _ => return Err(err("takes :over or :under and a number")),
                }
            }
            "header" | "address" | "envelope" | "string" | "hasflag" | "body" => {
                no_tests()?;
                match name {
                    "envelope" => self.need("envelope", line, name)?,
                    "string" => self.need("variables", line, name)?,
                    "hasflag" => self.need("imap4flags", line, name)?,
                    "body" => self.need("body", line, name)?,
                    _ => {}
                }
                let s = split(&t.args, line, name, |tag| {
                    match_tag(tag)
                        .or(if matches!(name, "header" | "address") {
                            index_tag(tag)
                        } else {
                            None
                        })
                        .or(if matches!(name, "address" | "envelope") {
                            addr_tag(tag)
                        } else {
                            None
                        })
                        .or(if name == "body" {
                            match tag {
                                "raw" | "text" => Some(Takes::Nothing),
                                "content" => Some(Takes::List),
                                _ => None,
                            }
                        } else {
                            None
                        })
                })?;
                let m = self.match_of(&s, line, name)?;
                let lists: Vec<Vec<String>> = s
                    .pos
                    .iter()
                    .map(|a| strs(a).ok_or_else(|| err("expected string lists")))
                    .collect::<R<_>>()?;
                match name {
                    "body" => {
                        let [keys] = lists.as_slice() else {
                            return Err(err("takes one key list"));
                        };
                        let mut transform = BodyTransform::Text;
                        let mut n = 0;
                        for (tag, v) in &s.tags {
                            transform = match tag.as_str() {
                                "raw" => BodyTransform::Raw,
                                "text" => BodyTransform::Text,
                                "content" => BodyTransform::Content(
                                    v.as_ref().and_then(strs).unwrap_or_default(),
                                ),
                                _ => continue,
                            };
                            n += 1;
                        }
                        if n > 1 {
                            return Err(err("more than one body transform"));
                        }
                        Test::Body {
                            m,
                            transform,
                            keys: keys.clone(),
                        }
                    }
                    "hasflag" => match lists.as_slice() {
                        [keys] => Test::HasFlag {
                            m,
                            vars: Vec::new(),
                            keys: keys.clone(),
                        },
                        [vars, keys] => {
                            self.need("variables", line, "hasflag with variables")?;
                            for v in vars {
                                check_var_name(v).map_err(|m| err(&m))?;
                            }
                            Test::HasFlag {
                                m,
                                vars: vars.clone(),
                                keys: keys.clone(),
                            }
                        }
                        _ => return Err(err("takes [variables] and a key list")),
                    },
                    _ => {
                        let [a, keys] = lists.as_slice() else {
                            return Err(err("takes two string lists"));
                        };
                        let (a, keys) = (a.clone(), keys.clone());
                        match name {
                            "header" => Test::Header { m, names: a, keys },
                            "string" => Test::String {
                                m,
                                sources: a,
                                keys,
                            },
                            "address" => Test::Address {
                                m,
                                part: self.addr_part(&s, line)?,
                                names: a,
                                keys,
                            },
                            _ => {
                                for part in &a {
                                    let p = part.to_ascii_lowercase();
                                    if p != "from" && p != "to" && !p.contains("${") {
                                        return Err(err(&format!(
                                            "unknown envelope part \"{part}\" (from, to)"
                                        )));
                                    }
                                }
                                Test::Envelope {
                                    m,
                                    part: self.addr_part(&s, line)?,
                                    names: a,
                                    keys,
                                }
                            }
                        }
                    }
                }
            }
            "date" | "currentdate" => {
                no_tests()?;
                self.need("date", line, name)?;
                let s = split(&t.args, line, name, |tag| match tag {
                    "zone" => Some(Takes::Str),
                    "originalzone" if name == "date" => Some(Takes::Nothing),
                    _ if name == "date" => match_tag(tag).or(index_tag(tag)),
                    _ => match_tag(tag),
                })?;
                let m = self.match_of(&s, line, name)?;
                let mut zone = Zone::Local;
                for (tag, v) in &s.tags {
                    match tag.as_str() {
                        "zone" if zone == Zone::Local => {
                            zone = Zone::Fixed(v.as_ref().and_then(one_str).unwrap_or_default())
                        }
                        "originalzone" if zone == Zone::Local => zone = Zone::Original,
                        "zone" | "originalzone" => {
                            return Err(err(":zone and :originalzone together"));
                        }
                        _ => {}
                    }
                }
                let strings: Vec<Vec<String>> = s
                    .pos
                    .iter()
                    .map(|a| strs(a).ok_or_else(|| err("expected strings")))
                    .collect::<R<_>>()?;
                let (header, part, keys) = match (name, strings.as_slice()) {
                    ("date", [h, p, k]) if h.len() == 1 && p.len() == 1 => {
                        (Some(h[0].clone()), p[0].clone(), k.clone())
                    }
                    ("currentdate", [p, k]) if p.len() == 1 => (None, p[0].clone(), k.clone()),
                    _ => {
                        return Err(err(
                            "wrong arguments (date: header, date-part, keys; currentdate: date-part, keys)",
                        ));
                    }
                };
                if !part.contains("${")
                    && !crate::sieve::interp::date::PARTS
                        .contains(&part.to_ascii_lowercase().as_str())
                {
                    return Err(err(&format!("unknown date part \"{part}\"")));
                }
                Test::Date {
                    m,
                    zone,
                    header,
                    part,
                    keys,
                }
            }
            _ => return Err(CompileError::new(line, &format!("unknown test '{name}'"))),
        })
    }
}
