//! The `encoded-character` extension (RFC 5228 §2.4.2.4): in every string of a script that
//! requires it, `${hex:HH HH}` stands for those octets and `${unicode:HHHH}` for those code
//! points. A sequence that does not follow the grammar is not an encoding and stays as it
//! is; one that follows it but names no character (a surrogate, above U+10FFFF, octets that
//! are not UTF-8) is an error of the script.

use super::CompileError;
use super::parse::{Arg, Command, Test};

/// Decode the strings of every command and test below `cmds`, in place.
pub fn decode_tree(cmds: &mut [Command]) -> Result<(), CompileError> {
    for c in cmds {
        decode_args(&mut c.args, c.line)?;
        decode_tests(&mut c.tests)?;
        if let Some(b) = &mut c.block {
            decode_tree(b)?;
        }
    }
    Ok(())
}

fn decode_tests(tests: &mut [Test]) -> Result<(), CompileError> {
    for t in tests {
        decode_args(&mut t.args, t.line)?;
        decode_tests(&mut t.tests)?;
    }
    Ok(())
}

fn decode_args(args: &mut [Arg], line: usize) -> Result<(), CompileError> {
    for a in args {
        if let Arg::Strings { items, .. } = a {
            for s in items {
                if s.contains("${") {
                    *s = decode(s).map_err(|m| CompileError::new(line, &m))?;
                }
            }
        }
    }
    Ok(())
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The hex numbers of a `hex-pair-seq` / `unicode-hex-seq` (blank-separated, blanks allowed
/// around; `max_digits` per number), or `None` when `body` does not follow the grammar.
fn hex_numbers(body: &str, max_digits: usize) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    let b = body.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && is_blank(b[i]) {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        // Numbers are separated by at least one blank.
        if !out.is_empty() && i == start {
            return None;
        }
        let d = i;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        if i == d || i - d > max_digits {
            return None;
        }
        out.push(u32::from_str_radix(&body[d..i], 16).ok()?);
    }
    // The sequence holds at least one number.
    if out.is_empty() { None } else { Some(out) }
}

/// Decode one string.
pub fn decode(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find("${") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let lower = after.get(..8).unwrap_or(after).to_ascii_lowercase();
        let (kind, prefix_len) = if lower.starts_with("hex:") {
            ("hex", 4)
        } else if lower.starts_with("unicode:") {
            ("unicode", 8)
        } else {
            out.push_str("${");
            rest = after;
            continue;
        };
        let Some(end) = after.find('}') else {
            out.push_str("${");
            rest = after;
            continue;
        };
        let body = &after[prefix_len..end];
        let decoded = match kind {
            "hex" => match hex_numbers(body, 2) {
                Some(octets) => {
                    let bytes: Vec<u8> = octets.into_iter().map(|o| o as u8).collect();
                    Some(String::from_utf8(bytes).map_err(|_| {
                        format!("encoded-character: ${{hex:{body}}} is not UTF-8 text")
                    })?)
                }
                None => None,
            },
            _ => match hex_numbers(body, 8) {
                Some(cps) => {
                    let mut t = String::new();
                    for cp in cps {
                        // §2.4.2.4: only 0-D7FF and E000-10FFFF are characters.
                        let c = char::from_u32(cp).ok_or_else(|| {
                            format!("encoded-character: U+{cp:X} is not a Unicode character")
                        })?;
                        t.push(c);
                    }
                    Some(t)
                }
                None => None,
            },
        };
        match decoded {
            Some(t) => {
                out.push_str(&t);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn rfc_examples_and_edges() {
        // RFC 5228 §2.4.2.4's examples.
        assert_eq!(decode("${hex:40}").unwrap(), "@");
        assert_eq!(decode("${hex: 40 }").unwrap(), "@");
        assert_eq!(decode("${HEX: 40}").unwrap(), "@");
        assert_eq!(decode("${hex:40").unwrap(), "${hex:40");
        assert_eq!(decode("${hex:400}").unwrap(), "${hex:400}");
        assert_eq!(decode("${hex:4${hex:30}}").unwrap(), "${hex:40}");
        assert_eq!(decode("${unicode:40}").unwrap(), "@");
        assert_eq!(decode("${ unicode:40}").unwrap(), "${ unicode:40}");
        assert_eq!(decode("${UNICODE:40}").unwrap(), "@");
        assert_eq!(decode("${UnICoDE:0000040}").unwrap(), "@");
        assert_eq!(decode("${Unicode:40}").unwrap(), "@");
        assert_eq!(decode("${Unicode:Cool}").unwrap(), "${Unicode:Cool}");
        assert!(decode("${unicode:D800}").is_err());
        assert!(decode("${unicode:110000}").is_err());
        // Several, mixed with text and variables (left for the variables extension).
        assert_eq!(
            decode("a${hex:e2 98 ba}b${unicode:263a 20}c ${var} ${hex:}").unwrap(),
            "a☺b☺ c ${var} ${hex:}"
        );
        assert_eq!(decode("${hex:4142}").unwrap(), "${hex:4142}");
        assert!(decode("${hex:ff}").is_err());
    }
}
