//! `postern alias …`: aliases whose local targets exist and that never loop; removing the
//! role addresses every domain needs (postmaster@, abuse@) is said out loud.

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;

use super::data_dir;
use crate::accounts::{AliasMap, Recipient, Snapshot, normalize_address, resolve_in};
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum AliasCmd {
    /// Add targets to an alias, creating it if needed.
    ///
    /// Local targets must be existing users or aliases; targets in other domains are forwarded
    /// to. The alias's whole target list is printed afterwards.
    Add {
        /// The alias address (e.g. info@example.com), or @DOMAIN for the catch-all.
        alias: String,
        /// Where its mail goes: one or more addresses (users, other aliases, or outside).
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Delete an alias.
    #[command(visible_alias = "delete")]
    Del {
        /// The alias address, or @DOMAIN for the catch-all.
        alias: String,
        /// Delete even though other aliases point at this one.
        #[arg(long)]
        force: bool,
    },
    /// List aliases.
    List,
}

/// Role addresses whose loss is warned about: RFC 5321 §4.5.1 (postmaster) and RFC 2142 §2
/// (abuse); DMARC and TLS reports go to postmaster@ too.
/// Role addresses, the rule that requires each, and what is lost when it reaches nobody.
const ROLES: [(&str, &str, &str); 2] = [
    (
        "postmaster",
        "RFC 5321 §4.5.1",
        "the DMARC and TLS reports this domain's DNS records ask for go to it",
    ),
    (
        "abuse",
        "RFC 2142",
        "complaints about mail from this domain go to it",
    ),
];

/// `@domain` for the catch-all, else the normalized address; the domain must be ours.
fn alias_key(config: &Config, alias: &str) -> anyhow::Result<String> {
    if let Some(d) = alias.strip_prefix('@') {
        if !d.eq_ignore_ascii_case(&config.domain) {
            bail!(
                "{alias} is not the catch-all of {0}; postern only hosts {0}",
                config.domain
            );
        }
        return Ok(format!("@{}", config.domain));
    }
    super::users::local_address(config, alias)
}

/// The aliases that name `user` (or one of its `+tag` forms) among their targets.
pub(super) fn pointing_at(aliases: &AliasMap, user: &str) -> Vec<String> {
    let (local, domain) = user.rsplit_once('@').unwrap_or((user, ""));
    let tagged = format!("{local}+");
    aliases
        .iter()
        .filter(|(_, targets)| {
            targets.iter().any(|t| {
                t == user
                    || t.rsplit_once('@')
                        .is_some_and(|(l, d)| d == domain && l.starts_with(&tagged))
            })
        })
        .map(|(a, _)| a.clone())
        .collect()
}

/// Why a local target cannot be used, if it cannot: it must be a user, an alias, or the
/// `+tag` form of a user (the forms `accounts::expand` follows).
fn missing_target(snap: &Snapshot, domain: &str, target: &str) -> Option<String> {
    let (local, d) = target.rsplit_once('@')?;
    if d != domain || snap.users.contains_key(target) || snap.aliases.contains_key(target) {
        return None;
    }
    if let Some((base, _)) = local.split_once('+')
        && snap.users.contains_key(&format!("{base}@{d}"))
    {
        return None;
    }
    Some(format!(
        "target {target} does not exist (no user or alias of that name): create it first with `postern user add {target}`, or correct the address"
    ))
}

/// A chain of aliases from `key` back to itself, if `aliases` has one: ["a", "b", "a"].
fn find_loop(aliases: &AliasMap, key: &str) -> Option<Vec<String>> {
    fn walk(aliases: &AliasMap, at: &str, key: &str, path: &mut Vec<String>) -> bool {
        let Some(targets) = aliases.get(at) else {
            return false;
        };
        for t in targets {
            if t == key {
                path.push(t.clone());
                return true;
            }
            if path.contains(t) || !aliases.contains_key(t) {
                continue;
            }
            path.push(t.clone());
            if walk(aliases, t, key, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![key.to_string()];
    walk(aliases, key, key, &mut path).then_some(path)
}

/// Refuse targets that reach nobody and additions that would make a loop.
fn check_add(snap: &Snapshot, domain: &str, key: &str, targets: &[String]) -> anyhow::Result<()> {
    if snap.users.contains_key(key) {
        bail!(
            "{key} is a user; an alias cannot have the same address (delete the user with `postern user del {key}` first, or choose another alias)"
        );
    }
    for t in targets {
        if let Some(why) = missing_target(snap, domain, t) {
            bail!(why);
        }
    }
    let mut after = snap.aliases.clone();
    let entry = after.entry(key.to_string()).or_default();
    for t in targets {
        if !entry.contains(t) {
            entry.push(t.clone());
        }
    }
    if let Some(chain) = find_loop(&after, key) {
        bail!(
            "that would make a loop: {}; mail to it would reach nobody",
            chain.join(" → ")
        );
    }
    Ok(())
}

pub fn run(config: &Config, config_path: &Path, cmd: AliasCmd) -> anyhow::Result<()> {
    match &cmd {
        AliasCmd::Add { .. } => data_dir::require_exists(config, config_path)?,
        _ => data_dir::require_accounts(config, config_path)?,
    }
    // Files written as root would be unreadable for the server's own user.
    super::queue::become_data_dir_owner(config)?;
    let acc = super::users::open(config)?;
    match cmd {
        AliasCmd::Add { alias, targets } => {
            let key = alias_key(config, &alias)?;
            let targets = targets
                .iter()
                .map(|t| normalize_address(t))
                .collect::<Result<Vec<_>, _>>()?;
            check_add(&*acc.snapshot()?, &config.domain, &key, &targets)?;
            let key = acc.add_alias(&key, &targets)?;
            let all = acc
                .snapshot()?
                .aliases
                .get(&key)
                .cloned()
                .unwrap_or(targets);
            println!("{key} -> {}", all.join(", "));
        }
        AliasCmd::Del { alias, force } => {
            let key = alias_key(config, &alias)?;
            let snap = acc.snapshot()?;
            if !snap.aliases.contains_key(&key) {
                bail!("alias {key} does not exist (see `postern alias list`)");
            }
            let pointing: Vec<String> = pointing_at(&snap.aliases, &key)
                .into_iter()
                .filter(|a| *a != key)
                .collect();
            if !pointing.is_empty() && !force {
                bail!(
                    "aliases point at {key}: {}; deleting it would leave them reaching nobody through it. Change them first, or pass --force",
                    pointing.join(", ")
                );
            }
            acc.delete_alias(&key)?;
            println!("deleted {key}");
            let after = acc.snapshot()?;
            let reaches_nobody =
                |s: &Snapshot, a: &str| resolve_in(s, &config.domain, a) == Recipient::Unknown;
            for (role, rfc, lost) in ROLES {
                let addr = format!("{role}@{}", config.domain);
                // Only what this deletion broke: a role address that already reached nobody
                // was warned about when that happened.
                if !reaches_nobody(&snap, &addr) && reaches_nobody(&after, &addr) {
                    eprintln!(
                        "warning: {addr} now reaches nobody; every mail domain must accept it ({rfc}), and {lost}. Point it at someone: `postern alias add {addr} you@{}`",
                        config.domain
                    );
                }
            }
        }
        AliasCmd::List => {
            for (alias, targets) in &acc.snapshot()?.aliases {
                println!("{alias} -> {}", targets.join(", "));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &[&str])]) -> AliasMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn loops_are_found_with_their_chain() {
        let m = map(&[("a@d", &["a@d"])]);
        assert_eq!(find_loop(&m, "a@d").unwrap(), ["a@d", "a@d"]);
        let m = map(&[("a1@d", &["a2@d"]), ("a2@d", &["x@d", "a1@d"])]);
        assert_eq!(find_loop(&m, "a1@d").unwrap(), ["a1@d", "a2@d", "a1@d"]);
        let m = map(&[("a1@d", &["a2@d"]), ("a2@d", &["u@d"])]);
        assert!(find_loop(&m, "a1@d").is_none());
    }

    #[test]
    fn pointing_at_counts_tags() {
        let m = map(&[
            ("p@d", &["bob@d"]),
            ("q@d", &["bob+lists@d", "x@o"]),
            ("r@d", &["bobby@d"]),
        ]);
        assert_eq!(pointing_at(&m, "bob@d"), ["p@d", "q@d"]);
    }
}
