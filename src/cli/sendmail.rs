//! `postern sendmail`: the sendmail(8) command line that cron, mail(1) and system tools use.
//! Reads the message on stdin, adds Message-ID/Date/From when missing (RFC 5322 §3.6,
//! RFC 6409 §8), delivers local recipients into their Maildir (through the queue when over
//! quota), DKIM-signs and queues the rest in `data_dir/queue` (a running server picks it up
//! within a second).
//!
//! Options understood: `-t` (recipients from To/Cc/Bcc, Bcc removed; added to those given as
//! arguments, as Postfix does), `-f ADDR`/`-r ADDR` (envelope sender), `-F NAME` (full name
//! for a missing From), `-i`/`-oi` (a lone "." does not end the message). Other common
//! options (`-oem`, `-odi`, `-bm`, `-v`, `-N …`, `-B …`, `-C …`, `-L …`, `-R …`, `-V …`,
//! `-X …`, `-h …`, `-O …`) are accepted and ignored.

use std::io::Read;

use anyhow::{Context, bail};

use crate::accounts::{Accounts, Recipient};
use crate::config::Config;
use crate::queue::Queue;
use crate::store::Store;

#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct SendmailArgs {
    /// sendmail(8) options and recipients.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub extract: bool,
    pub from: Option<String>,
    pub full_name: Option<String>,
    pub ignore_dots: bool,
    pub rcpts: Vec<String>,
}

/// Parse sendmail's command line (without the program name).
pub fn parse_args(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options::default();
    let mut i = 0;
    // Flags that take a value, glued (-fADDR) or as the next argument (-f ADDR).
    let with_value = |c: char| {
        matches!(
            c,
            'f' | 'r' | 'F' | 'N' | 'B' | 'C' | 'L' | 'R' | 'V' | 'X' | 'h' | 'O'
        )
    };
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            o.rcpts.extend(args[i..].iter().cloned());
            break;
        }
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.rcpts.push(a.clone());
            continue;
        };
        let first = flags.chars().next().unwrap_or('-');
        if with_value(first) {
            let value = if flags.len() > 1 {
                flags[1..].to_string()
            } else if i < args.len() {
                i += 1;
                args[i - 1].clone()
            } else {
                bail!("sendmail: option -{first} needs a value");
            };
            match first {
                'f' | 'r' => o.from = Some(value.trim_matches(['<', '>']).to_string()),
                'F' => o.full_name = Some(value),
                _ => {}
            }
            continue;
        }
        match first {
            't' => o.extract = true,
            'i' => o.ignore_dots = true,
            // -o<option>: only -oi means something to us.
            'o' if flags == "oi" => o.ignore_dots = true,
            'b' => match flags {
                "bm" => {}
                "bp" => bail!("sendmail -bp: use `postern queue list`"),
                _ => bail!("sendmail -{flags}: mode not supported (only -bm, delivery)"),
            },
            // -v, -n, -U, -e…, -q… and others: accepted and ignored.
            _ => {}
        }
    }
    Ok(o)
}

/// Read the message: with `ignore_dots` off, a line with a single "." ends it (sendmail).
/// LF, CRLF and a lone CR each end a line and are stored as CRLF, so every later reader
/// (DKIM, the header checks, mail-parser, IMAP clients) sees the same header fields
/// (RFC 5322 §2.2; issue 12 item 5).
pub fn read_message(input: &[u8], ignore_dots: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 40);
    let mut rest = input;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        let body = &rest[..end];
        let skip = match rest.get(end) {
            Some(b'\r') if rest.get(end + 1) == Some(&b'\n') => 2,
            Some(_) => 1,
            None => 0,
        };
        rest = &rest[end + skip..];
        if !ignore_dots && body == b"." {
            break;
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn header_end(msg: &[u8]) -> usize {
    msg.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or_else(|| {
            // No blank line: if it starts like a header block, it is all headers.
            if msg.starts_with(b"\r\n") {
                0
            } else {
                msg.len()
            }
        })
}

fn has_header(headers: &[u8], name: &str) -> bool {
    let text = String::from_utf8_lossy(headers);
    text.split("\r\n").any(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    })
}

/// Remove every field named `name` (with its continuation lines).
fn remove_header(headers: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len());
    let mut skipping = false;
    for line in headers.split_inclusive(|&b| b == b'\n') {
        let cont = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !cont {
            skipping = line.iter().position(|&b| b == b':').is_some_and(|p| {
                String::from_utf8_lossy(&line[..p])
                    .trim()
                    .eq_ignore_ascii_case(name)
            });
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out
}

fn qualify(addr: &str, domain: &str) -> String {
    let a = addr.trim().trim_matches(['<', '>']);
    if a.contains('@') {
        a.to_string()
    } else {
        format!("{a}@{domain}")
    }
}

fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| {
            !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
        .unwrap_or_else(|| "root".into())
}

pub struct Prepared {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    pub message: Vec<u8>,
}

/// Turn the options and the raw message into envelope and final message.
pub fn prepare(config: &Config, opts: &Options, raw: &[u8]) -> anyhow::Result<Prepared> {
    let msg = read_message(raw, opts.ignore_dots);
    let split = header_end(&msg);
    let (mut headers, body) = (msg[..split].to_vec(), msg[split..].to_vec());
    let mut rcpts: Vec<String> = opts
        .rcpts
        .iter()
        .flat_map(|a| a.split(','))
        .filter(|a| !a.trim().is_empty())
        .map(|a| qualify(a, &config.domain))
        .collect();
    let header_block = [&headers[..], b"\r\n"].concat();
    let parsed = mail_parser::MessageParser::default().parse(&header_block);
    if opts.extract {
        if let Some(p) = &parsed {
            for list in [p.to(), p.cc(), p.bcc()].into_iter().flatten() {
                for a in list.iter() {
                    // A bare local name ("To: root") parses as a name without address.
                    let bare = a
                        .name()
                        .map(str::trim)
                        .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace));
                    if let Some(addr) = a.address().or(bare) {
                        rcpts.push(qualify(addr, &config.domain));
                    }
                }
            }
        }
        // -t: Bcc is for the envelope only (RFC 5322 §3.6.3).
        headers = remove_header(&headers, "Bcc");
    }
    let mut seen = std::collections::HashSet::new();
    rcpts.retain(|r| seen.insert(r.to_ascii_lowercase()));
    if rcpts.is_empty() {
        bail!("sendmail: no recipients (give them as arguments, or use -t)");
    }
    let header_from = parsed
        .as_ref()
        .and_then(|p| p.from())
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map(str::to_string);
    let mail_from = opts
        .from
        .clone()
        .map(|f| {
            if f.is_empty() {
                f
            } else {
                qualify(&f, &config.hostname)
            }
        })
        .or(header_from)
        .unwrap_or_else(|| format!("{}@{}", current_user(), config.hostname));

    let mut added = String::new();
    if !has_header(&headers, "From") {
        match &opts.full_name {
            Some(n) => added.push_str(&format!(
                "From: \"{}\" <{mail_from}>\r\n",
                n.replace(['"', '\\', '\r', '\n'], "")
            )),
            None => added.push_str(&format!("From: {mail_from}\r\n")),
        }
    }
    if !has_header(&headers, "Date") {
        added.push_str(&format!(
            "Date: {}\r\n",
            chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S +0000")
        ));
    }
    if !has_header(&headers, "Message-ID") {
        use rand::Rng;
        added.push_str(&format!(
            "Message-ID: <{:016x}{:08x}@{}>\r\n",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            rand::rng().random::<u32>(),
            config.hostname
        ));
    }
    let mut message = headers;
    message.extend_from_slice(added.as_bytes());
    if body.is_empty() || !body.starts_with(b"\r\n") {
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(&body);
    if message.len() as u64 > config.limits.max_message_size {
        bail!(
            "sendmail: message of {} bytes exceeds limits.max_message_size ({})",
            message.len(),
            config.limits.max_message_size
        );
    }
    Ok(Prepared {
        mail_from,
        rcpts,
        message,
    })
}

/// Local recipients get the message through their Sieve script, as from port 25 or the
/// queue (`delivery::sieve::deliver`): redirects, vacation replies and reject DSNs go into
/// the queue, which the running server sends.
fn deliver_local(
    config: &Config,
    store: &Store,
    mail_from: &str,
    rcpts: &[crate::delivery::sieve::LocalRcpt],
    message: &[u8],
) -> anyhow::Result<()> {
    let queue = Queue::open(&config.data_dir)
        .with_context(|| format!("cannot open {}/queue", config.data_dir.display()))?;
    let srs = if config.delivery.srs {
        Some(
            crate::delivery::srs::Srs::load_or_create(&config.data_dir, &config.domain)
                .context("cannot read or create the SRS secret data_dir/srs.key")?,
        )
    } else {
        None
    };
    let dkim = crate::delivery::dkim::KeyCache::default();
    let env = crate::delivery::sieve::SieveEnv {
        config,
        store,
        queue: &queue,
        srs: srs.as_ref(),
        dkim: &dkim,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("sendmail: cannot start the async runtime")?;
    let return_path = format!("Return-Path: <{mail_from}>\r\n");
    // One id for this local delivery, so what the scripts queue (redirects, vacation
    // replies, reject DSNs) names the delivery that caused it.
    let id = crate::queue::new_id();
    rt.block_on(async {
        let filtered =
            crate::delivery::sieve::deliver(&env, &id, rcpts, "", mail_from, &return_path, message)
                .await
                .context("sendmail: local delivery failed")?;
        for r in &filtered.rejects {
            crate::delivery::sieve::reject_notice(&env, &id, mail_from, r, message).await;
        }
        anyhow::Ok(())
    })
}

pub fn run(config: &Config, args: SendmailArgs) -> anyhow::Result<()> {
    super::queue::become_data_dir_owner(config)?;
    let opts = parse_args(&args.args)?;
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .context("sendmail: cannot read the message from stdin")?;
    let p = prepare(config, &opts, &raw)?;

    let accounts = Accounts::open(&config.data_dir, &config.domain)?;
    let store = Store::new(&config.data_dir);
    let mut remote = Vec::new();
    let mut local_users: Vec<crate::delivery::sieve::LocalRcpt> = Vec::new();
    for r in &p.rcpts {
        let domain = crate::outbound::domain_of(r);
        if !config.is_local_domain(&domain) {
            remote.push(r.clone());
            continue;
        }
        match accounts.resolve(r)? {
            Recipient::Local { users, forward } => {
                for user in users {
                    if !local_users.iter().any(|l| l.user == user) {
                        local_users.push(crate::delivery::sieve::LocalRcpt {
                            user,
                            address: r.clone(),
                        });
                    }
                }
                remote.extend(forward);
            }
            Recipient::Unknown => bail!("sendmail: {r}: no such user here"),
            Recipient::Remote => remote.push(r.clone()),
        }
    }
    // A mailbox over quota with this message (`delivery::quota`) gets its copy through the
    // queue, which retries it (452 4.2.2) until there is room or reports it to the sender:
    // cron's mail is not lost, and no error is printed for a temporary condition.
    let size = (format!("Return-Path: <{}>\r\n", p.mail_from).len() + p.message.len()) as u64;
    let wanted: Vec<(String, u64)> = local_users.iter().map(|l| (l.user.clone(), size)).collect();
    let over =
        crate::delivery::quota::over_quota_blocking(&store, config.limits.mailbox_quota, &wanted);
    local_users.retain(|l| {
        if over.contains(&l.user) {
            tracing::info!("sendmail: {} is over quota: queued", l.user);
            remote.push(l.user.clone());
        }
        !over.contains(&l.user)
    });
    if !local_users.is_empty() {
        deliver_local(config, &store, &p.mail_from, &local_users, &p.message)?;
    }
    if !remote.is_empty() {
        let sig = crate::delivery::dkim::KeyCache::default()
            .sign(config, &p.message)
            .context("sendmail: DKIM signing failed")?;
        let mut signed = sig.into_bytes();
        signed.extend_from_slice(&p.message);
        let q = Queue::open(&config.data_dir)
            .with_context(|| format!("cannot open {}/queue", config.data_dir.display()))?;
        let id = q.enqueue_blocking(&p.mail_from, &remote, &signed)?;
        tracing::debug!(
            queue_id = id,
            "sendmail: queued for {} recipient(s)",
            remote.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_common_command_lines() {
        let o = parse_args(&s(&["-t", "-oi", "-oem", "-f", "cron@example.test"])).unwrap();
        assert!(o.extract && o.ignore_dots);
        assert_eq!(o.from.as_deref(), Some("cron@example.test"));
        let o = parse_args(&s(&["-i", "-Froot daemon", "-fx@y", "a@b", "c@d"])).unwrap();
        assert_eq!(o.full_name.as_deref(), Some("root daemon"));
        assert_eq!(o.from.as_deref(), Some("x@y"));
        assert_eq!(o.rcpts, s(&["a@b", "c@d"]));
        let o = parse_args(&s(&["-odi", "-N", "never", "--", "-odd@x"])).unwrap();
        assert_eq!(o.rcpts, s(&["-odd@x"]));
        assert!(parse_args(&s(&["-bs"])).is_err());
        assert!(parse_args(&s(&["-f"])).is_err());
    }

    #[test]
    fn dots_and_line_ends() {
        assert_eq!(read_message(b"a\n.\nb\n", false), b"a\r\n");
        assert_eq!(read_message(b"a\n.\nb\n", true), b"a\r\n.\r\nb\r\n");
        assert_eq!(read_message(b"a\r\nb", true), b"a\r\nb\r\n");
        // A lone CR is a line end too: one reading of the header section for everyone.
        assert_eq!(
            read_message(b"From: b@x\rX-A: a@y\n\nhi", true),
            b"From: b@x\r\nX-A: a@y\r\n\r\nhi\r\n"
        );
        assert_eq!(read_message(b"a\r.\rb", false), b"a\r\n");
    }

    #[test]
    fn prepares_headers_and_recipients() {
        let cfg = Config::parse(
            "domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"/tmp/x\"\n",
            std::path::Path::new("t"),
        )
        .unwrap();
        let o = parse_args(&s(&["-t", "-i", "extra@remote.test"])).unwrap();
        let p = prepare(
            &cfg,
            &o,
            b"To: a@remote.test, root\nBcc: hidden@remote.test\nSubject: x\n\nbody\n",
        )
        .unwrap();
        assert_eq!(
            p.rcpts,
            s(&[
                "extra@remote.test",
                "a@remote.test",
                "root@example.test",
                "hidden@remote.test"
            ])
        );
        let text = String::from_utf8(p.message).unwrap();
        assert!(!text.contains("Bcc"));
        assert!(text.contains("\r\nMessage-ID: <"));
        assert!(text.contains("\r\nDate: "));
        assert!(text.contains("\r\nFrom: "));
        assert!(text.ends_with("\r\n\r\nbody\r\n"));
        assert!(p.mail_from.ends_with("@mail.example.test"));
    }
}
