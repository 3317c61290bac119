//! Evaluating tests (RFC 5228 §5 and the extensions' tests).

use super::{RunError, State, split_flags};
use crate::sieve::ast::{AddrPart, Match, Test, Zone};
use crate::sieve::matching::{MatchType, any_match};
use crate::sieve::message::{decode_unstructured, field_addresses};

/// RFC 5233 §4: our subaddress separator, as in `user+tag@domain`.
const SEPARATOR: char = '+';

impl State<'_> {
    pub(crate) fn test(&mut self, t: &Test) -> Result<bool, RunError> {
        Ok(match t {
            Test::True => true,
            Test::False => false,
            Test::Not(t) => !self.test(t)?,
            Test::AllOf(ts) => {
                for t in ts {
                    if !self.test(t)? {
                        return Ok(false);
                    }
                }
                true
            }
            Test::AnyOf(ts) => {
                for t in ts {
                    if self.test(t)? {
                        return Ok(true);
                    }
                }
                false
            }
            Test::Exists(names) => names.iter().all(|n| self.msg.has_header(&self.expand(n))),
            Test::Size { over, limit } => {
                let size = self.msg.size() as u64;
                if *over { size > *limit } else { size < *limit }
            }
            Test::Header { m, names, keys } => {
                let mut values = Vec::new();
                for n in names {
                    let fields: Vec<&[u8]> = self.msg.raw_values(&self.expand(n)).collect();
                    values.extend(select(m, fields).into_iter().map(decode_unstructured));
                }
                self.compare(m, &values, keys)
            }
            Test::Address {
                m,
                part,
                names,
                keys,
            } => {
                let mut values = Vec::new();
                for n in names {
                    let fields: Vec<&[u8]> = self.msg.raw_values(&self.expand(n)).collect();
                    let addrs = select(m, fields).into_iter().flat_map(field_addresses);
                    for (a, usable) in addrs {
                        if usable {
                            values.extend(address_part(&a, *part));
                        } else if *part == AddrPart::All {
                            values.push(a);
                        }
                    }
                }
                self.compare(m, &values, keys)
            }
            Test::Envelope {
                m,
                part,
                names,
                keys,
            } => {
                let mut values = Vec::new();
                for n in names {
                    let a = match self.expand(n).to_ascii_lowercase().as_str() {
                        "from" => &self.ctx.envelope.from,
                        "to" => &self.ctx.envelope.to,
                        _ => continue,
                    };
                    if a.is_empty() {
                        // The null reverse-path: only `:all` sees it, as "" (§5.4).
                        if *part == AddrPart::All {
                            values.push(String::new());
                        }
                    } else {
                        values.extend(address_part(a, *part));
                    }
                }
                self.compare(m, &values, keys)
            }
            Test::Body { m, transform, keys } => {
                let values = self.msg.body(transform);
                self.compare(m, &values, keys)
            }
            Test::String { m, sources, keys } => {
                let values: Vec<String> = sources.iter().map(|s| self.expand(s)).collect();
                // RFC 5229 §5: with :count, empty strings are not counted.
                let values = if matches!(m.kind, MatchType::Count(_)) {
                    values.into_iter().filter(|s| !s.is_empty()).collect()
                } else {
                    values
                };
                self.compare(m, &values, keys)
            }
            Test::HasFlag { m, vars, keys } => {
                let values: Vec<String> = if vars.is_empty() {
                    self.flags.clone()
                } else {
                    vars.iter()
                        .flat_map(|v| {
                            split_flags(
                                self.vars
                                    .get(&v.to_ascii_lowercase())
                                    .map_or("", |s| s.as_str()),
                            )
                        })
                        .collect()
                };
                // RFC 5232 §4: each key is itself a space-separated flag list.
                let keys: Vec<String> = keys
                    .iter()
                    .flat_map(|k| split_flags(&self.expand(k)))
                    .collect();
                self.compare_expanded(m, &values, &keys)
            }
            Test::MailboxExists(names) => names
                .iter()
                .all(|n| (self.ctx.mailbox_exists)(&self.expand(n))),
            Test::Date {
                m,
                zone,
                header,
                part,
                keys,
            } => {
                let part = self.expand(part).to_ascii_lowercase();
                let zone = match zone {
                    Zone::Local => Some(0),
                    Zone::Fixed(z) => super::date::parse_zone(&self.expand(z)),
                    Zone::Original => None,
                };
                let values: Vec<String> = match header {
                    None => super::date::part(self.ctx.now, zone.unwrap_or(0), &part)
                        .into_iter()
                        .collect(),
                    // RFC 5260 §4.2: the first field of that name, or the one `:index`
                    // names (§6).
                    Some(h) => {
                        let fields: Vec<&[u8]> = self.msg.raw_values(&self.expand(h)).collect();
                        let chosen = match m.index {
                            Some(_) => select(m, fields),
                            None => fields.into_iter().take(1).collect(),
                        };
                        chosen
                            .into_iter()
                            .next()
                            .and_then(super::date::parse_header_date)
                            .and_then(|(ts, orig)| {
                                super::date::part(ts, zone.unwrap_or(orig), &part)
                            })
                            .into_iter()
                            .collect()
                    }
                };
                self.compare(m, &values, keys)
            }
        })
    }

    fn compare(&mut self, m: &Match, values: &[String], keys: &[String]) -> bool {
        let keys: Vec<String> = keys.iter().map(|k| self.expand(k)).collect();
        self.compare_expanded(m, values, &keys)
    }

    fn compare_expanded(&mut self, m: &Match, values: &[String], keys: &[String]) -> bool {
        let mut caps = None;
        let hit = any_match(m.kind, m.comparator, values, keys, &mut caps);
        if hit && let Some(c) = caps {
            // RFC 5229 §3.2: only a successful :matches replaces the match variables.
            if self.script.requires("variables") {
                self.matched = c
                    .into_iter()
                    .map(|mut s| {
                        super::truncate(&mut s, self.limits.max_variable_len);
                        s
                    })
                    .collect();
            }
        }
        hit
    }
}

/// The fields of one name a test looks at: all of them, or the one `:index` picks (RFC 5260
/// §6; each name is counted on its own).
fn select<'a>(m: &Match, fields: Vec<&'a [u8]>) -> Vec<&'a [u8]> {
    match m.index {
        None => fields,
        Some(ix) => ix.pick(fields).into_iter().collect(),
    }
}

/// The requested part of `local@domain` (§2.7.4, RFC 5233); `None` when it has none.
pub(crate) fn address_part(a: &str, part: AddrPart) -> Option<String> {
    let (local, domain) = match a.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (a, None),
    };
    match part {
        AddrPart::All => Some(a.to_string()),
        AddrPart::LocalPart => Some(local.to_string()),
        AddrPart::Domain => domain.map(str::to_string),
        AddrPart::User => Some(
            local
                .split_once(SEPARATOR)
                .map_or(local, |(u, _)| u)
                .to_string(),
        ),
        AddrPart::Detail => local.split_once(SEPARATOR).map(|(_, d)| d.to_string()),
    }
}
