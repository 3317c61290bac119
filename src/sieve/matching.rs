//! Match types (RFC 5228 §2.7.1, RFC 5231 relational) and comparators (RFC 4790:
//! `i;octet`, `i;ascii-casemap`, `i;ascii-numeric`).

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Rel {
    pub fn parse(s: &str) -> Option<Rel> {
        Some(match s.to_ascii_lowercase().as_str() {
            "gt" => Rel::Gt,
            "ge" => Rel::Ge,
            "lt" => Rel::Lt,
            "le" => Rel::Le,
            "eq" => Rel::Eq,
            "ne" => Rel::Ne,
            _ => return None,
        })
    }
    fn holds(self, o: Ordering) -> bool {
        match self {
            Rel::Gt => o == Ordering::Greater,
            Rel::Ge => o != Ordering::Less,
            Rel::Lt => o == Ordering::Less,
            Rel::Le => o != Ordering::Greater,
            Rel::Eq => o == Ordering::Equal,
            Rel::Ne => o != Ordering::Equal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchType {
    #[default]
    Is,
    Contains,
    Matches,
    /// RFC 5231 `:value "rel"`.
    Value(Rel),
    /// RFC 5231 `:count "rel"`: the number of values, compared to each key.
    Count(Rel),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Comparator {
    Octet,
    #[default]
    AsciiCasemap,
    AsciiNumeric,
}

impl Comparator {
    pub fn parse(s: &str) -> Option<Comparator> {
        Some(match s.to_ascii_lowercase().as_str() {
            "i;octet" => Comparator::Octet,
            "i;ascii-casemap" => Comparator::AsciiCasemap,
            "i;ascii-numeric" => Comparator::AsciiNumeric,
            _ => return None,
        })
    }

    /// Whether `:contains`/`:matches` make sense (RFC 4790 §9.1: ascii-numeric has only
    /// equality and ordering).
    pub fn has_substring(self) -> bool {
        self != Comparator::AsciiNumeric
    }

    pub fn order(self, a: &str, b: &str) -> Ordering {
        match self {
            Comparator::Octet => a.as_bytes().cmp(b.as_bytes()),
            Comparator::AsciiCasemap => {
                let la = a.bytes().map(|c| c.to_ascii_lowercase());
                let lb = b.bytes().map(|c| c.to_ascii_lowercase());
                la.cmp(lb)
            }
            Comparator::AsciiNumeric => numeric_order(a, b),
        }
    }

    fn char_eq(self, a: char, b: char) -> bool {
        match self {
            Comparator::AsciiCasemap => a.eq_ignore_ascii_case(&b),
            _ => a == b,
        }
    }
}

/// RFC 4790 §9.1: the leading digits are the value; a string without any is +infinity, and
/// two infinities are equal.
fn numeric_order(a: &str, b: &str) -> Ordering {
    fn digits(s: &str) -> Option<&str> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (n > 0).then(|| {
            let d = &s[..n];
            let z = d.bytes().take_while(|&c| c == b'0').count();
            &d[z..]
        })
    }
    match (digits(a), digits(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
    }
}

fn contains(cmp: Comparator, hay: &str, needle: &str) -> bool {
    match cmp {
        Comparator::AsciiCasemap => {
            let (h, n) = (hay.as_bytes(), needle.as_bytes());
            n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
        }
        _ => hay.contains(needle),
    }
}

enum GlobTok {
    Lit(char),
    One,
    Star,
}

/// `:matches` (§2.7.1): `*` any run, `?` one character, `\` quotes the next one. On success
/// returns the match variables (RFC 5229 §3.2): `[0]` the whole value, then one per wildcard,
/// each `*` as short as the match allows from the left.
pub fn glob(cmp: Comparator, text: &str, pattern: &str) -> Option<Vec<String>> {
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        toks.push(match c {
            '*' => GlobTok::Star,
            '?' => GlobTok::One,
            '\\' => GlobTok::Lit(it.next().unwrap_or('\\')),
            c => GlobTok::Lit(c),
        });
    }
    let s: Vec<char> = text.chars().collect();
    // Byte offsets of each char so captures can slice `text`.
    let mut offs: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    offs.push(text.len());
    let (m, n) = (toks.len(), s.len());
    let (mut pi, mut si) = (0usize, 0usize);
    let mut caps: Vec<(usize, usize)> = Vec::new();
    // The last star seen: its token index, where it started in s, its capture index.
    let mut star: Option<(usize, usize, usize)> = None;
    loop {
        if pi == m && si == n {
            break;
        }
        if pi < m {
            match toks[pi] {
                GlobTok::Star => {
                    star = Some((pi, si, caps.len()));
                    caps.push((si, si));
                    pi += 1;
                    continue;
                }
                GlobTok::One if si < n => {
                    caps.push((si, si + 1));
                    pi += 1;
                    si += 1;
                    continue;
                }
                GlobTok::Lit(c) if si < n && cmp.char_eq(c, s[si]) => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Mismatch: let the last star swallow one more character and retry after it.
        let (sp, start, ci) = star?;
        let end = caps[ci].1 + 1;
        if end > n {
            return None;
        }
        caps.truncate(ci);
        caps.push((start, end));
        pi = sp + 1;
        si = end;
    }
    let mut out = vec![text.to_string()];
    out.extend(
        caps.iter()
            .map(|&(a, b)| text[offs[a]..offs[b]].to_string()),
    );
    Some(out)
}

/// Compares every value with every key; true when one pair matches (§2.7.1). For `:matches`
/// the captures of the first matching pair go to `captures`.
pub fn any_match(
    kind: MatchType,
    cmp: Comparator,
    values: &[String],
    keys: &[String],
    captures: &mut Option<Vec<String>>,
) -> bool {
    if let MatchType::Count(rel) = kind {
        let n = values.len().to_string();
        return keys.iter().any(|k| rel.holds(cmp.order(&n, k)));
    }
    for v in values {
        for k in keys {
            let hit = match kind {
                MatchType::Is => cmp.order(v, k) == Ordering::Equal,
                MatchType::Contains => contains(cmp, v, k),
                MatchType::Matches => match glob(cmp, v, k) {
                    Some(c) => {
                        *captures = Some(c);
                        true
                    }
                    None => false,
                },
                MatchType::Value(rel) => rel.holds(cmp.order(v, k)),
                MatchType::Count(_) => unreachable!("handled above"),
            };
            if hit {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_basics_and_captures() {
        let c = Comparator::AsciiCasemap;
        assert_eq!(glob(c, "hi", "*i*").unwrap(), vec!["hi", "h", ""]);
        assert_eq!(glob(c, "a.b.c", "*.*").unwrap(), vec!["a.b.c", "a", "b.c"]);
        assert!(glob(c, "ABC", "a?c").is_some());
        assert!(glob(Comparator::Octet, "ABC", "a?c").is_none());
        assert!(glob(c, "abc", "a\\*c").is_none());
        assert!(glob(c, "a*c", "a\\*c").is_some());
        assert!(glob(c, "", "*").is_some());
        assert!(glob(c, "x", "").is_none());
        assert!(glob(c, "ünïcode", "?n?code").is_some());
        assert!(glob(c, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "*a*a*a*a*a*a*c").is_none());
    }

    #[test]
    fn numeric() {
        let n = Comparator::AsciiNumeric;
        assert_eq!(n.order("10", "9"), Ordering::Greater);
        assert_eq!(n.order("007", "7x"), Ordering::Equal);
        assert_eq!(n.order("abc", "99999"), Ordering::Greater);
        assert_eq!(n.order("abc", "x"), Ordering::Equal);
    }

    #[test]
    fn count_and_value() {
        let v = vec!["a".to_string(), "b".to_string()];
        let mut cap = None;
        let k = |s: &str| vec![s.to_string()];
        assert!(any_match(
            MatchType::Count(Rel::Eq),
            Comparator::AsciiNumeric,
            &v,
            &k("2"),
            &mut cap
        ));
        assert!(!any_match(
            MatchType::Count(Rel::Gt),
            Comparator::AsciiNumeric,
            &v,
            &k("2"),
            &mut cap
        ));
        assert!(any_match(
            MatchType::Value(Rel::Lt),
            Comparator::AsciiCasemap,
            &v,
            &k("B"),
            &mut cap
        ));
    }
}
