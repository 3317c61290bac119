//! Variable expansion and `set` modifiers (RFC 5229 §3, §4).

use super::State;
use crate::sieve::ast::Modifier;

/// Expanded strings never grow past this, whatever the script does.
const MAX_EXPANDED: usize = 64 * 1024;

impl State<'_> {
    /// Replaces `${name}` and `${N}` when the script requires "variables"; an unknown
    /// variable is the empty string, and text that is not a reference stays as it is.
    pub(crate) fn expand(&self, s: &str) -> String {
        if !self.script.requires("variables") || !s.contains("${") {
            return s.to_string();
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(p) = rest.find("${") {
            out.push_str(&rest[..p]);
            let after = &rest[p + 2..];
            match after.find('}') {
                Some(end) if is_reference(&after[..end]) => {
                    let name = &after[..end];
                    if name.bytes().all(|c| c.is_ascii_digit()) {
                        let i: usize = name.parse().unwrap_or(usize::MAX);
                        if let Some(v) = self.matched.get(i) {
                            out.push_str(v);
                        }
                    } else if let Some(v) = self.vars.get(&name.to_ascii_lowercase()) {
                        out.push_str(v);
                    }
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push_str("${");
                    rest = after;
                }
            }
            if out.len() > MAX_EXPANDED {
                super::truncate(&mut out, MAX_EXPANDED);
                return out;
            }
        }
        out.push_str(rest);
        out
    }
}

/// `identifier` or a number (§3); namespaces (`a.b`) are not supported, so they stay text.
fn is_reference(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && (n.bytes().all(|c| c.is_ascii_digit())
            || (!n.as_bytes()[0].is_ascii_digit()
                && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')))
}

pub(crate) fn apply_modifier(m: Modifier, v: &str) -> String {
    match m {
        Modifier::Lower => v.to_ascii_lowercase(),
        Modifier::Upper => v.to_ascii_uppercase(),
        Modifier::LowerFirst | Modifier::UpperFirst => {
            let mut c = v.chars();
            match c.next() {
                Some(f) => {
                    let f = if m == Modifier::LowerFirst {
                        f.to_ascii_lowercase()
                    } else {
                        f.to_ascii_uppercase()
                    };
                    let mut s = f.to_string();
                    s.push_str(c.as_str());
                    s
                }
                None => String::new(),
            }
        }
        Modifier::QuoteWildcard => {
            let mut s = String::with_capacity(v.len());
            for c in v.chars() {
                if matches!(c, '*' | '?' | '\\') {
                    s.push('\\');
                }
                s.push(c);
            }
            s
        }
        Modifier::Length => v.chars().count().to_string(),
    }
}
