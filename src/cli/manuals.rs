//! Man pages and shell completions, generated from the clap definitions so they never drift:
//! `postern(8)` and one page per subcommand (clap_mangen), `postern.toml(5)` from the commented
//! example config (which tests/ops_contrib.rs holds to exactly the keys the parser knows), and
//! completions for bash, zsh and fish (clap_complete).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use super::Cli;

/// The example config: every key, its default and a comment saying what it does.
const EXAMPLE_CONFIG: &str = include_str!("../../contrib/postern.example.toml");

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

/// `postern completions SHELL`: the script on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "postern", &mut out);
    // A closed pipe (`postern completions bash | head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(&out);
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct ManualsArgs {
    /// Directory to write postern.8, postern-*.8, postern.toml.5 and completions/ into.
    pub dir: std::path::PathBuf,
}

/// `postern manuals DIR` (for packaging): every man page and completion file.
pub fn write_all(args: ManualsArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_pages(&cmd, dir)?;
    std::fs::write(dir.join("postern.toml.5"), config_page())?;
    let comp = dir.join("completions");
    std::fs::create_dir_all(&comp)?;
    for (shell, name) in [
        (clap_complete::Shell::Bash, "postern"),
        (clap_complete::Shell::Zsh, "_postern"),
        (clap_complete::Shell::Fish, "postern.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "postern", &mut out);
        std::fs::write(comp.join(name), out)?;
    }
    Ok(())
}

/// postern.8, then postern-user.8, postern-user-add.8, … (hidden commands left out).
fn write_pages(cmd: &clap::Command, dir: &Path) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir)?;
    }
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("System Manager's Manual");
    let path = dir.join(man.get_filename());
    let mut f =
        std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    man.render(&mut f)?;
    f.flush()?;
    Ok(())
}

/// Text safe inside a roff line: backslashes escaped, no line starting as a request.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e");
    if t.starts_with(['.', '\'']) {
        format!("\\&{t}")
    } else {
        t
    }
}

/// One documented key: its table (empty at the top level), name, default and description.
#[derive(Debug, Default)]
pub struct KeyDoc {
    pub table: String,
    pub key: String,
    pub default: String,
    pub text: Vec<String>,
}

/// The keys of the example config with their comments: a comment on the key's line, comment
/// lines just above it, and indented comment lines just below it all describe it. Comments
/// right below a `[table]` line describe the table: (table, its description) come first.
pub fn config_keys() -> (Vec<(String, Vec<String>)>, Vec<KeyDoc>) {
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    let mut keys: Vec<KeyDoc> = Vec::new();
    let mut table = String::new();
    let mut pending: Vec<String> = Vec::new();
    let mut table_has_keys = true;
    for line in EXAMPLE_CONFIG.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            pending.clear();
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            // `[outbound.relay_domains]`: a key of [outbound] whose value is a table, described
            // by the comment above it.
            if let Some((parent, child)) = name.rsplit_once('.') {
                keys.push(KeyDoc {
                    table: parent.to_string(),
                    key: child.to_string(),
                    default: "{} (a table: [".to_string() + name + "])",
                    text: std::mem::take(&mut pending),
                });
            }
            table = name.to_string();
            tables.push((table.clone(), Vec::new()));
            table_has_keys = false;
            pending.clear();
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim().to_string();
            if line.starts_with(' ')
                && let Some(last) = keys.last_mut()
            {
                // An indented comment continues the key above it.
                last.text.push(comment);
            } else if !table_has_keys && let Some((_, intro)) = tables.last_mut() {
                intro.push(comment);
            } else {
                pending.push(comment);
            }
            continue;
        }
        let Some((key, rest)) = line.split_once(" = ") else {
            continue;
        };
        let (default, comment) = match rest.find("  #") {
            Some(i) => (rest[..i].trim(), rest[i + 3..].trim()),
            None => (rest.trim(), ""),
        };
        table_has_keys = true;
        let mut text = std::mem::take(&mut pending);
        if !comment.is_empty() {
            text.push(comment.to_string());
        }
        keys.push(KeyDoc {
            table: table.clone(),
            key: key.trim().to_string(),
            default: default.to_string(),
            text,
        });
    }
    (tables, keys)
}

/// postern.toml(5).
pub fn config_page() -> String {
    let (tables, keys) = config_keys();
    let mut out = String::new();
    out.push_str(&format!(
        ".TH POSTERN.TOML 5 \"\" \"postern {}\" \"File Formats Manual\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str(".SH NAME\npostern.toml \\- configuration file of postern(8)\n");
    out.push_str(".SH SYNOPSIS\n/etc/postern/postern.toml\n");
    out.push_str(
        ".SH DESCRIPTION\nA TOML file. Only \\fBdomain\\fR, \\fBhostname\\fR and \\fBdata_dir\\fR \
         are required; every other key has the default shown. Unknown keys are an error that \
         names them. A relative \\fBdata_dir\\fR is taken relative to the directory of the \
         config file. \\fBpostern init\\fR writes a short commented file; the full example is \
         /usr/share/doc/postern/postern.example.toml.\n",
    );
    let mut table = None;
    for k in &keys {
        if table != Some(&k.table) {
            if k.table.is_empty() {
                out.push_str(".SH TOP-LEVEL KEYS\n");
            } else {
                out.push_str(&format!(".SH [{}]\n", k.table));
                if let Some((_, intro)) = tables.iter().find(|(t, _)| *t == k.table)
                    && !intro.is_empty()
                {
                    out.push_str(&format!("{}\n", roff(&intro.join(" "))));
                }
            }
            table = Some(&k.table);
        }
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR = {}\n{}\n",
            roff(&k.key),
            roff(&k.default),
            roff(&k.text.join(" "))
        ));
    }
    out.push_str(".SH FILES\n/etc/postern/postern.toml, /var/lib/postern\n");
    out.push_str(".SH SEE ALSO\npostern(8), postern\\-init(8), postern\\-check(8)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the config parser knows, as "table.key" ("domain" at the top level).
    fn parser_keys() -> Vec<String> {
        let cfg = crate::config::Config::parse(
            "domain='example.com'\nhostname='mail.example.com'\ndata_dir='/x'",
            Path::new("t.toml"),
        )
        .unwrap();
        let value = toml::Value::try_from(&cfg).unwrap();
        let mut out = Vec::new();
        for (k, v) in value.as_table().unwrap() {
            match v.as_table() {
                Some(t) => out.extend(t.keys().map(|sub| format!("{k}.{sub}"))),
                None => out.push(k.clone()),
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_config_key_is_documented_in_postern_toml_5() {
        let (_, docs) = config_keys();
        let page = config_page();
        for key in parser_keys() {
            let (table, name) = key.rsplit_once('.').unwrap_or(("", &key));
            let doc = docs
                .iter()
                .find(|d| d.table == table && d.key == name)
                .unwrap_or_else(|| {
                    panic!("config key {key} is not documented (contrib/postern.example.toml)")
                });
            assert!(
                doc.text.iter().any(|t| !t.is_empty()),
                "config key {key} has no description in contrib/postern.example.toml"
            );
            assert!(
                page.contains(&format!(".TP\n\\fB{}\\fR = ", roff(name))),
                "{key} missing from postern.toml(5)"
            );
        }
    }

    #[test]
    fn pages_and_completions_are_written() {
        let d = tempfile::tempdir().unwrap();
        write_all(ManualsArgs {
            dir: d.path().to_owned(),
        })
        .unwrap();
        for f in [
            "postern.8",
            "postern-user.8",
            "postern-user-add.8",
            "postern-check.8",
            "postern.toml.5",
            "completions/postern",
            "completions/_postern",
            "completions/postern.fish",
        ] {
            let text = std::fs::read_to_string(d.path().join(f)).unwrap();
            assert!(text.len() > 100, "{f}: {text}");
        }
        let add = std::fs::read_to_string(d.path().join("postern-user-add.8")).unwrap();
        assert!(add.contains("password\\-stdin"), "{add}");
        assert!(!d.path().join("postern-manuals.8").exists(), "hidden");
    }
}
