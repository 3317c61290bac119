//! Actions printed in Sieve-like syntax, one per line (`postern sieve test`, logs).

use std::fmt;

use super::interp::Action;

fn q(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                o.push('\\');
                o.push(c);
            }
            '\r' => o.push_str("\\r"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn flags(f: &mut fmt::Formatter<'_>, flags: &[String]) -> fmt::Result {
    if !flags.is_empty() {
        write!(f, " :flags {}", q(&flags.join(" ")))?;
    }
    Ok(())
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Keep { flags: fl } => {
                f.write_str("keep")?;
                flags(f, fl)
            }
            Action::FileInto {
                mailbox,
                flags: fl,
                create,
                copy,
            } => {
                f.write_str("fileinto")?;
                if *copy {
                    f.write_str(" :copy")?;
                }
                if *create {
                    f.write_str(" :create")?;
                }
                flags(f, fl)?;
                write!(f, " {}", q(mailbox))
            }
            Action::Redirect { addr, copy } => {
                write!(
                    f,
                    "redirect{} {}",
                    if *copy { " :copy" } else { "" },
                    q(addr)
                )
            }
            Action::Discard => f.write_str("discard"),
            Action::Reject { reason, extended } => {
                write!(
                    f,
                    "{} {}",
                    if *extended { "ereject" } else { "reject" },
                    q(reason)
                )
            }
            Action::Vacation(v) => {
                write!(f, "vacation :seconds {}", v.period)?;
                if let Some(s) = &v.subject {
                    write!(f, " :subject {}", q(s))?;
                }
                if let Some(s) = &v.from {
                    write!(f, " :from {}", q(s))?;
                }
                if !v.addresses.is_empty() {
                    let a: Vec<String> = v.addresses.iter().map(|a| q(a)).collect();
                    write!(f, " :addresses [{}]", a.join(", "))?;
                }
                if v.mime {
                    f.write_str(" :mime")?;
                }
                write!(f, " :handle {} {}", q(&v.handle), q(&v.reason))
            }
        }
    }
}
