//! The `--from-imap` half of `postern import`: every folder of another server (or the ones
//! named with `--folders`), message by message, into `import::Target`, with a progress bar
//! over messages and bytes. A message that cannot be fetched is reported and the copy goes
//! on; a lost connection ends the run with what was copied so far (a second run resumes).

use anyhow::{Context, bail};

use super::import::{ImportArgs, Summary, Target};
use super::import_imap::{Client, item, target_folder};
use super::import_source::Item;
use crate::config::Config;

/// `imaps://HOST[:PORT]` → (host, port).
fn parse_url(url: &str) -> anyhow::Result<(String, u16)> {
    let Some(rest) = url.strip_prefix("imaps://") else {
        bail!("--from-imap takes imaps://HOST[:PORT] (TLS is required), not {url:?}");
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.contains(']') || h.ends_with(']') => {
            let port = p.parse().with_context(|| format!("bad port in {url:?}"))?;
            Ok((h.trim_matches(['[', ']']).to_owned(), port))
        }
        _ if !rest.is_empty() => Ok((rest.trim_matches(['[', ']']).to_owned(), 993)),
        _ => bail!("no host in {url:?}"),
    }
}

pub fn run(
    config: &Config,
    args: &ImportArgs,
    url: &str,
    target: &mut Target,
    sum: &mut Summary,
) -> anyhow::Result<()> {
    let (host, port) = parse_url(url)?;
    let login = args.login.as_deref().unwrap_or_default();
    let pw_path = args
        .password_file
        .as_deref()
        .unwrap_or(std::path::Path::new(""));
    let password = std::fs::read_to_string(pw_path)
        .with_context(|| format!("cannot read the password file {}", pw_path.display()))?;
    let password = password.lines().next().unwrap_or_default();
    let max = config.limits.max_message_size;
    let ca = args.ca_file.clone().unwrap_or_default();
    let mut c = Client::connect(&host, port, &ca, max)?;
    c.login(login, password)
        .with_context(|| format!("cannot log in to {host} as {login}"))?;
    let mut folders = c.folders()?;
    if !args.folders.is_empty() {
        folders.retain(|f| {
            let shown = crate::store::names::decode_mutf7(&f.name).unwrap_or(f.name.clone());
            args.folders
                .iter()
                .any(|w| w.eq_ignore_ascii_case(&shown) || w.eq_ignore_ascii_case(&f.name))
        });
    }
    let pb = super::import::progress(
        0,
        "{msg} [{bar:30}] {pos}/{len} messages {bytes_per_sec} ETA {eta}",
        args.quiet,
    );
    'folders: for f in folders {
        let dest = target_folder(&f.name, f.delim, f.special);
        let (uv, metas) = match c.examine(&f.name) {
            Ok(x) => x,
            Err(e) => {
                sum.refused.push(format!("{}: cannot open: {e:#}", f.name));
                continue;
            }
        };
        pb.inc_length(metas.len() as u64);
        pb.set_message(dest.clone());
        for m in metas {
            pb.inc(1);
            let src_key = format!("imap {host} {uv} {} {}", m.uid, f.name);
            if target.has_key(&src_key) {
                sum.duplicates += 1;
                continue;
            }
            let body = if m.size > max {
                None
            } else {
                match c.body(m.uid) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        sum.refused
                            .push(format!("{}: UID {}: {e:#}", f.name, m.uid));
                        if e.downcast_ref::<std::io::Error>().is_some() {
                            sum.refused
                                .push("connection lost: run the import again to resume".into());
                            break 'folders;
                        }
                        continue;
                    }
                }
            };
            match item(&dest, &m, body, max) {
                Item::Msg(msg) => {
                    let before = sum.imported + sum.duplicates;
                    match target.put(msg, sum) {
                        Ok(()) => {
                            if sum.imported + sum.duplicates > before
                                && let Err(e) = target.record_key(src_key)
                            {
                                sum.refused.push(e);
                            }
                        }
                        Err(why) => sum
                            .refused
                            .push(format!("{}: UID {}: {why}", f.name, m.uid)),
                    }
                }
                Item::Refused { folder, at, why } => {
                    sum.refused.push(format!("{folder}: {at}: {why}"))
                }
            }
        }
    }
    pb.finish_and_clear();
    c.logout();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("imaps://mail.example.com").unwrap(),
            ("mail.example.com".into(), 993)
        );
        assert_eq!(
            parse_url("imaps://127.0.0.1:1993/").unwrap(),
            ("127.0.0.1".into(), 1993)
        );
        assert_eq!(
            parse_url("imaps://[::1]:1993").unwrap(),
            ("::1".into(), 1993)
        );
        assert!(parse_url("imap://x").is_err());
        assert!(parse_url("imaps://").is_err());
    }
}
