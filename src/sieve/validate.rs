//! From the generic tree to the typed script: `require` first and known (RFC 5228 §3.2),
//! every extension used is required, arguments have the right kinds. Errors name the line.

use std::collections::HashSet;

use super::CompileError;
use super::ast::*;
use super::parse::{self, Arg};

/// Capabilities this implementation offers (for `require` and ManageSieve CAPABILITY).
pub const EXTENSIONS: &[&str] = &[
    "fileinto",
    "envelope",
    "imap4flags",
    "copy",
    "mailbox",
    "body",
    "variables",
    "relational",
    "subaddress",
    "reject",
    "ereject",
    "vacation",
    "vacation-seconds",
    "date",
    "index",
    "encoded-character",
    "comparator-i;ascii-numeric",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
];

pub(super) struct V {
    caps: HashSet<String>,
}

pub(super) type R<T> = Result<T, CompileError>;

pub fn validate(cmds: &[parse::Command]) -> R<(Vec<Cmd>, HashSet<String>)> {
    let mut v = V {
        caps: HashSet::new(),
    };
    let mut i = 0;
    // §3.2: require only at the start of the script.
    while let Some(c) = cmds.get(i).filter(|c| c.name == "require") {
        let [Arg::Strings { items, .. }] = c.args.as_slice() else {
            return Err(CompileError::new(
                c.line,
                "require takes a string list of extensions",
            ));
        };
        if !c.tests.is_empty() || c.block.is_some() {
            return Err(CompileError::new(c.line, "require takes no test or block"));
        }
        for ext in items {
            let e = ext.to_ascii_lowercase();
            if !EXTENSIONS.contains(&e.as_str()) {
                return Err(CompileError::new(
                    c.line,
                    &format!("require: unknown Sieve extension \"{ext}\""),
                ));
            }
            v.caps.insert(e);
        }
        i += 1;
    }
    let out = if v.caps.contains("encoded-character") {
        let mut rest = cmds[i..].to_vec();
        super::encoded::decode_tree(&mut rest)?;
        v.block(&rest)?
    } else {
        v.block(&cmds[i..])?
    };
    Ok((out, v.caps))
}

/// Tagged arguments and positional ones, split per the command's tag table.
pub(super) struct Split {
    pub tags: Vec<(String, Option<Arg>)>,
    pub pos: Vec<Arg>,
}

#[derive(Clone, Copy)]
pub(super) enum Takes {
    Nothing,
    Str,
    List,
    Num,
}

pub(super) fn split(
    args: &[Arg],
    line: usize,
    what: &str,
    table: impl Fn(&str) -> Option<Takes>,
) -> R<Split> {
    let mut out = Split {
        tags: Vec::new(),
        pos: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a {
            Arg::Tag(t) => {
                if !out.pos.is_empty() {
                    return Err(CompileError::new(
                        line,
                        &format!("{what}: tag :{t} after positional arguments"),
                    ));
                }
                let Some(takes) = table(t) else {
                    return Err(CompileError::new(
                        line,
                        &format!("{what}: unknown tag :{t}"),
                    ));
                };
                if out.tags.iter().any(|(x, _)| x == t) {
                    return Err(CompileError::new(
                        line,
                        &format!("{what}: tag :{t} given twice"),
                    ));
                }
                let val = match takes {
                    Takes::Nothing => None,
                    Takes::Str | Takes::List | Takes::Num => {
                        let v = it.next().cloned();
                        let ok = matches!(
                            (&v, takes),
                            (Some(Arg::Strings { list: false, .. }), Takes::Str)
                                | (Some(Arg::Strings { .. }), Takes::List)
                                | (Some(Arg::Number(_)), Takes::Num)
                        );
                        if !ok {
                            return Err(CompileError::new(
                                line,
                                &format!("{what}: tag :{t} is missing its argument"),
                            ));
                        }
                        v
                    }
                };
                out.tags.push((t.clone(), val));
            }
            other => out.pos.push(other.clone()),
        }
    }
    Ok(out)
}

pub(super) fn strs(a: &Arg) -> Option<Vec<String>> {
    match a {
        Arg::Strings { items, .. } => Some(items.clone()),
        _ => None,
    }
}
pub(super) fn one_str(a: &Arg) -> Option<String> {
    match a {
        Arg::Strings { items, list: false } => items.first().cloned(),
        Arg::Strings { items, list: true } if items.len() == 1 => items.first().cloned(),
        _ => None,
    }
}

pub(super) fn match_tag(t: &str) -> Option<Takes> {
    match t {
        "is" | "contains" | "matches" => Some(Takes::Nothing),
        "value" | "count" | "comparator" => Some(Takes::Str),
        _ => None,
    }
}
pub(super) fn addr_tag(t: &str) -> Option<Takes> {
    match t {
        "all" | "localpart" | "domain" | "user" | "detail" => Some(Takes::Nothing),
        _ => None,
    }
}

impl V {
    pub(super) fn need(&self, ext: &str, line: usize, what: &str) -> R<()> {
        if self.caps.contains(ext) {
            Ok(())
        } else {
            Err(CompileError::new(
                line,
                &format!("{what} needs require \"{ext}\""),
            ))
        }
    }

    fn block(&mut self, cmds: &[parse::Command]) -> R<Vec<Cmd>> {
        let mut out: Vec<Cmd> = Vec::new();
        for c in cmds {
            match c.name.as_str() {
                "elsif" | "else" => {
                    let Some(Cmd {
                        kind:
                            CmdKind::If {
                                branches,
                                otherwise,
                            },
                        ..
                    }) = out.last_mut()
                    else {
                        return Err(CompileError::new(
                            c.line,
                            &format!("{} without a preceding if", c.name),
                        ));
                    };
                    if otherwise.is_some() {
                        return Err(CompileError::new(c.line, &format!("{} after else", c.name)));
                    }
                    let body = c.block.as_ref().ok_or_else(|| {
                        CompileError::new(c.line, &format!("{} needs a block", c.name))
                    })?;
                    let body = self.block(body)?;
                    if c.name == "elsif" {
                        let t = self.single_test(c.line, "elsif", &c.tests)?;
                        if !c.args.is_empty() {
                            return Err(CompileError::new(c.line, "elsif takes only a test"));
                        }
                        branches.push((t, body));
                    } else {
                        if !c.args.is_empty() || !c.tests.is_empty() {
                            return Err(CompileError::new(c.line, "else takes no arguments"));
                        }
                        *otherwise = Some(body);
                    }
                }
                _ => out.push(self.command(c)?),
            }
        }
        Ok(out)
    }

    fn single_test(&mut self, line: usize, what: &str, tests: &[parse::Test]) -> R<Test> {
        match tests {
            [t] => self.test(t),
            _ => Err(CompileError::new(
                line,
                &format!("{what} needs exactly one test"),
            )),
        }
    }

    fn command(&mut self, c: &parse::Command) -> R<Cmd> {
        let line = c.line;
        let name = c.name.as_str();
        let err = |m: &str| CompileError::new(line, &format!("{name}: {m}"));
        if name == "if" {
            let t = self.single_test(line, "if", &c.tests)?;
            if !c.args.is_empty() {
                return Err(err("takes only a test"));
            }
            let body = c.block.as_ref().ok_or_else(|| err("needs a block"))?;
            let body = self.block(body)?;
            return Ok(Cmd {
                kind: CmdKind::If {
                    branches: vec![(t, body)],
                    otherwise: None,
                },
                line,
            });
        }
        if name == "require" {
            return Err(CompileError::new(
                line,
                "require must come before any other command",
            ));
        }
        if c.block.is_some() {
            return Err(err("takes no block"));
        }
        if !c.tests.is_empty() {
            return Err(err("takes no test"));
        }
        let flags_tag = |t: &str| (t == "flags").then_some(Takes::List);
        let kind = match name {
            "stop" | "discard" => {
                if !c.args.is_empty() {
                    return Err(err("takes no arguments"));
                }
                if name == "stop" {
                    CmdKind::Stop
                } else {
                    CmdKind::Discard
                }
            }
            "keep" => {
                let s = split(&c.args, line, name, flags_tag)?;
                if !s.pos.is_empty() {
                    return Err(err("takes no positional arguments"));
                }
                let flags = self.flags_arg(&s, line)?;
                CmdKind::Keep { flags }
            }
            "fileinto" => {
                self.need("fileinto", line, "fileinto")?;
                let s = split(&c.args, line, name, |t| match t {
                    "copy" | "create" => Some(Takes::Nothing),
                    _ => flags_tag(t),
                })?;
                let [m] = s.pos.as_slice() else {
                    return Err(err("needs one mailbox name"));
                };
                let mailbox = one_str(m).ok_or_else(|| err("the mailbox must be a string"))?;
                let copy = self.has(&s, "copy", "copy", line)?;
                let create = self.has(&s, "create", "mailbox", line)?;
                let flags = self.flags_arg(&s, line)?;
                CmdKind::FileInto {
                    mailbox,
                    flags,
                    copy,
                    create,
                }
            }
            "redirect" => {
                let s = split(&c.args, line, name, |t| {
                    (t == "copy").then_some(Takes::Nothing)
                })?;
                let [a] = s.pos.as_slice() else {
                    return Err(err("needs one address"));
                };
                let addr = one_str(a).ok_or_else(|| err("the address must be a string"))?;
                if !addr.contains("${") && !super::interp::valid_redirect(&addr) {
                    return Err(err(&format!("the address \"{addr}\" is not valid")));
                }
                let copy = self.has(&s, "copy", "copy", line)?;
                CmdKind::Redirect { addr, copy }
            }
            "reject" | "ereject" => {
                self.need(name, line, name)?;
                let [a] = c.args.as_slice() else {
                    return Err(err("needs one reason string"));
                };
                let reason = one_str(a).ok_or_else(|| err("the reason must be a string"))?;
                CmdKind::Reject {
                    reason,
                    extended: name == "ereject",
                }
            }
            "vacation" => {
                self.need("vacation", line, name)?;
                self.vacation(c)?
            }
            "setflag" | "addflag" | "removeflag" => {
                self.need("imap4flags", line, name)?;
                let (var, list) = match c.args.as_slice() {
                    [l] => (None, strs(l)),
                    [v, l] => (
                        Some(one_str(v).ok_or_else(|| err("the variable name must be a string"))?),
                        strs(l),
                    ),
                    _ => return Err(err("takes [variable] flag-list")),
                };
                if let Some(v) = &var {
                    self.need("variables", line, "a flag variable")?;
                    check_var_name(v).map_err(|m| err(&m))?;
                }
                let flags = list.ok_or_else(|| err("the flags must be a string list"))?;
                let op = match name {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                CmdKind::Flags { op, var, flags }
            }
            "set" => {
                self.need("variables", line, name)?;
                let s = split(&c.args, line, name, |t| match t {
                    "lower" | "upper" | "lowerfirst" | "upperfirst" | "quotewildcard"
                    | "length" => Some(Takes::Nothing),
                    _ => None,
                })?;
                let [n, v] = s.pos.as_slice() else {
                    return Err(err("takes a name and a value"));
                };
                let name_s = one_str(n).ok_or_else(|| err("the name must be a string"))?;
                check_var_name(&name_s).map_err(|m| err(&m))?;
                let value = one_str(v).ok_or_else(|| err("the value must be a string"))?;
                let mut modifiers: Vec<Modifier> = s
                    .tags
                    .iter()
                    .map(|(t, _)| match t.as_str() {
                        "lower" => Modifier::Lower,
                        "upper" => Modifier::Upper,
                        "lowerfirst" => Modifier::LowerFirst,
                        "upperfirst" => Modifier::UpperFirst,
                        "quotewildcard" => Modifier::QuoteWildcard,
                        _ => Modifier::Length,
                    })
                    .collect();
                // RFC 5229 §4.1: applied by precedence, highest first; one of each level.
                let prec = |m: &Modifier| match m {
                    Modifier::Lower | Modifier::Upper => 40,
                    Modifier::LowerFirst | Modifier::UpperFirst => 30,
                    Modifier::QuoteWildcard => 20,
                    Modifier::Length => 10,
                };
                modifiers.sort_by_key(|m| std::cmp::Reverse(prec(m)));
                if modifiers.windows(2).any(|w| prec(&w[0]) == prec(&w[1])) {
                    return Err(err("two modifiers of the same precedence"));
                }
                CmdKind::Set {
                    modifiers,
                    name: name_s.to_ascii_lowercase(),
                    value,
                }
            }
            _ => {
                return Err(CompileError::new(
                    line,
                    &format!("unknown command '{name}'"),
                ));
            }
        };
        Ok(Cmd { kind, line })
    }

    fn has(&self, s: &Split, tag: &str, ext: &str, line: usize) -> R<bool> {
        if s.tags.iter().any(|(t, _)| t == tag) {
            self.need(ext, line, &format!(":{tag}"))?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn flags_arg(&self, s: &Split, line: usize) -> R<Option<Vec<String>>> {
        match s.tags.iter().find(|(t, _)| t == "flags") {
            Some((_, Some(a))) => {
                self.need("imap4flags", line, ":flags")?;
                Ok(strs(a))
            }
            _ => Ok(None),
        }
    }

    fn vacation(&self, c: &parse::Command) -> R<CmdKind> {
        let line = c.line;
        let err = |m: &str| CompileError::new(line, &format!("vacation: {m}"));
        let s = split(&c.args, line, "vacation", |t| match t {
            "days" | "seconds" => Some(Takes::Num),
            "subject" | "from" | "handle" => Some(Takes::Str),
            "addresses" => Some(Takes::List),
            "mime" => Some(Takes::Nothing),
            _ => None,
        })?;
        let [r] = s.pos.as_slice() else {
            return Err(err("needs one reason string"));
        };
        let reason = one_str(r).ok_or_else(|| err("the reason must be a string"))?;
        let mut a = VacationArgs {
            period: None,
            subject: None,
            from: None,
            addresses: Vec::new(),
            mime: false,
            handle: None,
            reason,
        };
        for (t, v) in &s.tags {
            match (t.as_str(), v) {
                ("days", Some(Arg::Number(n))) => {
                    if a.period.is_some() {
                        return Err(err(":days and :seconds together"));
                    }
                    a.period = Some(n.saturating_mul(86_400));
                }
                ("seconds", Some(Arg::Number(n))) => {
                    self.need("vacation-seconds", line, ":seconds")?;
                    if a.period.is_some() {
                        return Err(err(":days and :seconds together"));
                    }
                    a.period = Some(*n);
                }
                ("subject", Some(v)) => a.subject = one_str(v),
                ("from", Some(v)) => a.from = one_str(v),
                ("handle", Some(v)) => a.handle = one_str(v),
                ("addresses", Some(v)) => a.addresses = strs(v).unwrap_or_default(),
                ("mime", _) => a.mime = true,
                _ => {}
            }
        }
        Ok(CmdKind::Vacation(Box::new(a)))
    }
}

/// RFC 5229 §3: `identifier *("." identifier)`; a namespace is not something we implement.
pub(super) fn check_var_name(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && !v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("\"{v}\" is not a valid variable name"))
    }
}
