//! Town secrets (API keys, tokens): one file per secret under `.gt/secrets/` (dir 0700,
//! files 0600), never in the database, the event log, a container's config or an error.
//! An agent gets its rig's secrets as read-only files mounted at `/gt-secrets`, copied
//! per agent at spawn and removed at release; `gt agent run` turns them into the
//! environment of the agent command only. Known values are redacted from agent output.

use super::Town;
use crate::error::{Error, IoContext, Result};
use crate::untrusted::Dir;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where an agent's secrets are mounted (read-only) inside its container.
pub const MOUNT: &str = "/gt-secrets";
/// The largest secret value accepted, stored or read back.
pub const MAX_BYTES: u64 = 64 << 10;
/// Values shorter than this are not redacted (they would blank out ordinary words).
const MIN_REDACT: usize = 4;
/// Secrets read from one directory, at most.
const MAX_SECRETS: usize = 256;

/// `<town>/.gt/secrets`.
pub fn dir(town: &Town) -> PathBuf {
    town.root.join(super::DB_DIR).join("secrets")
}

/// `agents/<rig>/<name>/secrets`: the host side of an agent's `/gt-secrets`.
pub fn agent_dir(town: &Town, rig: &str, name: &str) -> PathBuf {
    town.mailbox_dir(rig, name).join("secrets")
}

/// Whether `name` is a secret name: an environment variable name `[A-Z_][A-Z0-9_]{0,63}`.
pub fn is_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_uppercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

/// A secret name, checked: also not one of gt's own `GT_` variables.
pub fn validate_name(name: &str) -> Result<()> {
    if !is_name(name) {
        return Err(Error::usage(format!("{name:?} is not a secret name"))
            .with_hint("a secret is named like an environment variable: [A-Z_][A-Z0-9_]{0,63}, e.g. ANTHROPIC_API_KEY"));
    }
    if name.starts_with("GT_") {
        return Err(Error::usage(format!("secret name {name} starts with GT_"))
            .with_hint("GT_ variables are gt's own; choose another name"));
    }
    Ok(())
}

/// One secret, as `gt secret list` shows it: never its value.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Info {
    pub name: String,
    /// When it was last set (ms since the epoch).
    pub set_at: i64,
}

/// What `gt secret set` did.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Set {
    pub name: String,
    /// It replaced an earlier value.
    pub replaced: bool,
}

/// The value as stored: trailing line ends dropped (`echo KEY | gt secret set`), not
/// empty, no NUL (it becomes an environment variable), at most 64 KiB.
fn clean(name: &str, mut value: Vec<u8>) -> Result<Vec<u8>> {
    while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        value.pop();
    }
    if value.is_empty() {
        return Err(
            Error::usage(format!("the value of secret {name} is empty")).with_hint(format!(
                "pipe it in: `printf %s \"$KEY\" | gt secret set {name}`, or use --file PATH"
            )),
        );
    }
    if value.len() as u64 > MAX_BYTES {
        return Err(Error::usage(format!(
            "the value of secret {name} is {} bytes, over the {MAX_BYTES}-byte limit",
            value.len()
        )));
    }
    if value.contains(&0) {
        return Err(
            Error::usage(format!("the value of secret {name} contains a NUL byte"))
                .with_hint("a secret becomes an environment variable, which cannot hold NUL"),
        );
    }
    Ok(value)
}

/// Make `d` (and its parents), mode 0700 even when it exists with a looser one.
fn private_dir(d: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .ctx(|| format!("creating {}", d.display()))?;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
        .ctx(|| format!("making {} private", d.display()))
}

/// Make `.gt/secrets` (0700, also when it exists with a looser mode).
fn ensure_dir(town: &Town) -> Result<PathBuf> {
    let d = dir(town);
    private_dir(&d)?;
    Ok(d)
}

/// `gt secret set NAME`: store `value` (from stdin or a file, never argv).
pub fn set(town: &mut Town, name: &str, value: Vec<u8>) -> Result<Set> {
    validate_name(name)?;
    let value = clean(name, value)?;
    let d = ensure_dir(town)?;
    let path = d.join(name);
    let replaced = path.exists();
    crate::util::write_atomic_mode(&path, &value, Some(0o600))?;
    town.db.write(|tx| {
        tx.event(
            "secret.set",
            name,
            serde_json::json!({ "replaced": replaced }),
        )
    })?;
    Ok(Set {
        name: name.to_string(),
        replaced,
    })
}

/// `gt secret list`: names and when each was set, sorted by name.
pub fn list(town: &Town) -> Result<Vec<Info>> {
    let d = dir(town);
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", d.display()), e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.ctx(|| format!("reading {}", d.display()))?;
        let Some(name) = e.file_name().to_str().map(String::from) else {
            continue;
        };
        if !is_name(&name) {
            continue; // temp files of an interrupted set, or strangers
        }
        let meta = e
            .metadata()
            .ctx(|| format!("reading {}", e.path().display()))?;
        if !meta.is_file() {
            continue;
        }
        let set_at = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        out.push(Info { name, set_at });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What `gt secret rm` did: the rigs that still name the secret (their slings now fail
/// until it is set again).
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Removed {
    pub name: String,
    pub used_by: Vec<String>,
}

/// `gt secret rm NAME`. Agents already running keep the copy they were given.
pub fn remove(town: &mut Town, name: &str) -> Result<Removed> {
    validate_name(name)?;
    let path = dir(town).join(name);
    if !path.is_file() {
        return Err(Error::not_found(
            format!("secret {name}"),
            Some("`gt secret list` shows the secrets of this town".into()),
        ));
    }
    std::fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
    let used_by: Vec<String> = super::rig::list(town)?
        .into_iter()
        .filter(|r| r.secrets.iter().any(|s| s == name))
        .map(|r| r.name)
        .collect();
    town.db.write(|tx| {
        tx.event(
            "secret.removed",
            name,
            serde_json::json!({ "used_by": used_by }),
        )
    })?;
    Ok(Removed {
        name: name.to_string(),
        used_by,
    })
}

/// Whether secret `name` is set.
pub fn exists(town: &Town, name: &str) -> bool {
    is_name(name) && dir(town).join(name).is_file()
}

/// The names in `names` that are not set.
pub fn missing(town: &Town, names: &[String]) -> Vec<String> {
    names.iter().filter(|n| !exists(town, n)).cloned().collect()
}

/// The error for a rig whose secret is not set (it names the secret, never a value).
pub fn missing_error(rig: &str, missing: &[String]) -> Error {
    let first = missing.first().map(String::as_str).unwrap_or("NAME");
    Error::usage(format!(
        "rig {rig} needs secret{} {}, not set in this town",
        if missing.len() == 1 { "" } else { "s" },
        missing.join(", ")
    ))
    .with_hint(format!(
        "`gt secret set {first}` (the value from stdin), or `gt rig set {rig} --secret NAME…` / `--no-secrets`"
    ))
}

/// The stored value of secret `name`.
fn read(town: &Town, name: &str) -> Result<Vec<u8>> {
    let d = dir(town);
    let handle = Dir::open(&d).map_err(|e| Error::Other(format!("{}: {e}", d.display())))?;
    handle.read(name, MAX_BYTES).map_err(|e| match e {
        crate::untrusted::Refused::Missing => Error::usage(format!("secret {name} is not set"))
            .with_hint(format!("`gt secret set {name}` (the value from stdin)")),
        e => Error::Other(format!("secret {name}: {e}")),
    })
}

/// Every set secret with its value: for redaction.
fn all_values(town: &Town) -> Vec<(String, Vec<u8>)> {
    list(town)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| read(town, &i.name).ok().map(|v| (i.name, v)))
        .collect()
}

/// `text` with every known secret value (4 bytes or longer) replaced by `[secret NAME]`.
pub fn redact(town: &Town, text: &str) -> String {
    redact_with(&all_values(town), text)
}

fn redact_with(secrets: &[(String, Vec<u8>)], text: &str) -> String {
    let mut values: Vec<(&str, &str)> = secrets
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), std::str::from_utf8(v).ok()?)))
        .filter(|(_, v)| v.len() >= MIN_REDACT)
        .collect();
    values.retain(|(_, v)| text.contains(v));
    if values.is_empty() {
        return text.to_string();
    }
    // One pass, longest value first at each place: a value that contains another is
    // replaced whole, and a replacement is never searched again.
    values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match values.iter().find(|(_, v)| rest.starts_with(v)) {
            Some((name, v)) => {
                out.push_str(&format!("[secret {name}]"));
                rest = &rest[v.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Whether a value given on the command line looks like an API key or token (`sk-…`,
/// `sk-ant-…`, `ghp_…`, `xox…`, or a run of 32+ key characters with letters and
/// digits): it belongs in `gt secret set`, not in argv, the database or `docker inspect`.
pub fn looks_like_key(value: &str) -> bool {
    let key_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let starts_token = |i: usize| {
        i == 0
            || !value[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric())
    };
    for prefix in ["sk-", "ghp_", "github_pat_", "xox"] {
        if value
            .match_indices(prefix)
            .any(|(i, _)| starts_token(i) && value[i + prefix.len()..].starts_with(key_char))
        {
            return true;
        }
    }
    value.split(|c: char| !key_char(c)).any(|run| {
        run.len() >= 32
            && run.bytes().any(|b| b.is_ascii_digit())
            && run.bytes().any(|b| b.is_ascii_alphabetic())
    })
}

/// Copy the rig's secrets into the agent's `agents/<rig>/<name>/secrets/` (dir 0700,
/// files 0400, owned by the agent's uid when gt runs as root), replacing what an earlier
/// dispatch left. None when the rig has no secrets (nothing is mounted).
pub fn copy_for_agent(
    town: &Town,
    rig: &str,
    name: &str,
    secrets: &[String],
) -> Result<Option<PathBuf>> {
    remove_secrets(town, rig, name)?;
    if secrets.is_empty() {
        return Ok(None);
    }
    let gone = missing(town, secrets);
    if !gone.is_empty() {
        return Err(missing_error(rig, &gone));
    }
    let d = agent_dir(town, rig, name);
    private_dir(&d)?;
    for s in secrets {
        validate_name(s)?;
        let value = read(town, s)?;
        crate::util::write_atomic_mode(&d.join(s), &value, Some(0o400))?;
    }
    hand_over(&d, secrets)?;
    Ok(Some(d))
}

/// When gt runs as root, the agent runs as its own uid: give it the copies (and only
/// them; the town's `.gt/secrets` stays root's).
fn hand_over(d: &Path, secrets: &[String]) -> Result<()> {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        return Ok(());
    }
    let (uid, gid) = super::workspace::agent_user();
    for p in std::iter::once(d.to_path_buf()).chain(secrets.iter().map(|s| d.join(s))) {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
            .ctx(|| format!("giving {} to the agent's user", p.display()))?;
    }
    Ok(())
}

/// Remove an agent's copy of its secrets: at release (done, nuke, give up, undo).
pub fn remove_secrets(town: &Town, rig: &str, name: &str) -> Result<()> {
    let d = agent_dir(town, rig, name);
    match std::fs::remove_dir_all(&d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", d.display()), e)),
    }
}

/// Inside the container: the secrets mounted at `dir`, as (name, value) pairs for the
/// agent command's environment. Only regular files with a secret's name and at most
/// 64 KiB are taken (no symlink is followed); the others are named in `skipped`.
pub fn mounted(dir: &Path) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let Ok(d) = Dir::open(dir) else {
        return (found, skipped);
    };
    let Ok(entries) = d.entries(MAX_SECRETS) else {
        return (found, skipped);
    };
    for e in entries {
        if !is_name(&e.name) || !e.is_file {
            skipped.push(e.name);
            continue;
        }
        match d.read(&e.name, MAX_BYTES) {
            Ok(v) if !v.contains(&0) => found.push((e.name, v)),
            _ => skipped.push(e.name),
        }
    }
    found.sort();
    (found, skipped)
}

/// The town's known secret values, read once: what every view that shows agent text
/// redacts through (`gt` redacts all it prints with the town's, see `cli::output`).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    values: Vec<(String, Vec<u8>)>,
    /// The values as they appear inside a JSON string, where that differs.
    escaped: Vec<(String, Vec<u8>)>,
}

impl Redactor {
    pub fn of(town: &Town) -> Redactor {
        Redactor::new(all_values(town))
    }

    fn new(values: Vec<(String, Vec<u8>)>) -> Redactor {
        let escaped = values
            .iter()
            .filter_map(|(n, v)| {
                let v = std::str::from_utf8(v).ok()?;
                let json = serde_json::to_string(v).ok()?;
                let inner = &json[1..json.len() - 1];
                (inner != v).then(|| (n.clone(), inner.as_bytes().to_vec()))
            })
            .collect();
        Redactor { values, escaped }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every known value replaced by `[secret NAME]`.
    pub fn redact(&self, text: &str) -> String {
        redact_with(&self.values, text)
    }

    /// Serialized JSON with every known value replaced, raw or JSON-escaped.
    pub fn redact_json(&self, json: &str) -> String {
        redact_with(&self.escaped, &redact_with(&self.values, json))
    }

    /// Text still being written (a line without its end, as `gt top` shows it): redacted,
    /// less an end that could be the start of a value.
    pub fn redact_unfinished(&self, text: &str) -> String {
        self.redact(&text[..self.held_from(text)])
    }

    /// Where the part of `buf` to hold back begins: the earliest place from which the
    /// rest could begin a value (a whole value across it moves it past that value).
    fn held_from(&self, buf: &str) -> usize {
        let longest = self.texts().map(str::len).max().unwrap_or(0);
        if longest == 0 {
            return buf.len();
        }
        let mut cut = buf.len();
        let from = buf.len().saturating_sub(longest - 1);
        let bytes = buf.as_bytes();
        for (p, _) in buf.char_indices().filter(|(p, _)| *p >= from) {
            // The first byte first: most places begin no value.
            if self
                .texts()
                .any(|v| v.as_bytes()[0] == bytes[p] && v.starts_with(&buf[p..]))
            {
                cut = p;
                break;
            }
        }
        // A whole value across the cut goes out (redacted) with what is before it.
        loop {
            let across = self
                .texts()
                .filter_map(|v| {
                    let start = cut.saturating_sub(v.len() - 1);
                    let start = (start..cut).find(|i| buf.is_char_boundary(*i))?;
                    buf[start..]
                        .match_indices(v)
                        .map(|(i, _)| start + i)
                        .find(|&i| i < cut && i + v.len() > cut)
                        .map(|i| i + v.len())
                })
                .max();
            match across {
                Some(end) => cut = end,
                None => return cut,
            }
        }
    }

    /// The redactable values, as text.
    fn texts(&self) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .filter(|v| v.len() >= MIN_REDACT)
    }
}

/// Redaction of a stream (`gt peek -f`): the engine splits long lines (at 16 KiB) and a
/// read may end anywhere, so a value can arrive in two chunks. What could be the start
/// of a value is held back until the next chunk says whether it is one.
#[derive(Debug, Default)]
pub struct StreamRedactor {
    r: Redactor,
    pending: String,
}

impl StreamRedactor {
    pub fn new(r: Redactor) -> StreamRedactor {
        StreamRedactor {
            r,
            pending: String::new(),
        }
    }

    /// The redacted text that `chunk` lets out (maybe less than it, maybe more).
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let cut = self.r.held_from(&self.pending);
        let rest = self.pending[cut..].to_string();
        let out = self.r.redact(&self.pending[..cut]);
        self.pending = rest;
        out
    }

    /// What is left at the end of the stream, redacted.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.r.redact(&rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_environment_variable_names() {
        for ok in ["ANTHROPIC_API_KEY", "_X", "A", "K9"] {
            assert!(is_name(ok), "{ok}");
        }
        let long = "A".repeat(65);
        for bad in [
            "",
            "lower",
            "9A",
            "A-B",
            "A B",
            "A=B",
            "../X",
            long.as_str(),
        ] {
            assert!(!is_name(bad), "{bad}");
        }
        assert!(validate_name("GT_TOKEN").is_err());
    }

    #[test]
    fn a_value_loses_its_trailing_newline_and_may_not_be_empty() {
        assert_eq!(clean("K", b"abc\n".to_vec()).unwrap(), b"abc");
        assert_eq!(clean("K", b"abc\r\n".to_vec()).unwrap(), b"abc");
        assert!(clean("K", b"\n".to_vec()).is_err());
        assert!(clean("K", b"a\0b".to_vec()).is_err());
        assert!(clean("K", vec![b'x'; MAX_BYTES as usize + 1]).is_err());
    }

    #[test]
    fn redaction_replaces_every_known_value_longest_first() {
        let s = vec![
            ("SHORT".to_string(), b"abc".to_vec()),
            ("KEY".to_string(), b"sk-secret-1234".to_vec()),
            ("PART".to_string(), b"secret".to_vec()),
        ];
        assert_eq!(
            redact_with(
                &s,
                "got sk-secret-1234 twice: sk-secret-1234; abc; a secret"
            ),
            "got [secret KEY] twice: [secret KEY]; abc; a [secret PART]"
        );
    }

    #[test]
    fn a_value_split_between_chunks_is_redacted_whole() {
        let r = Redactor::new(vec![("KEY".to_string(), b"sk-secret-1234".to_vec())]);
        let mut s = StreamRedactor::new(r.clone());
        let mut out = String::new();
        for chunk in [
            "start sk-sec",
            "ret-12",
            "34 end\nsk",
            "-",
            "x sk-secret-1234",
        ] {
            out += &s.push(chunk);
        }
        out += &s.finish();
        assert_eq!(out, "start [secret KEY] end\nsk-x [secret KEY]");
        let mut s = StreamRedactor::new(r.clone());
        assert_eq!(s.push("nothing held\n"), "nothing held\n");
        assert_eq!(r.redact_unfinished("line so far: sk-secr"), "line so far: ");
        assert_eq!(
            r.redact_unfinished("sk-secret-1234 and more"),
            "[secret KEY] and more"
        );
        assert_eq!(
            r.redact_json(r#"{"a":"x sk-secret-1234"}"#),
            r#"{"a":"x [secret KEY]"}"#
        );
        let q = Redactor::new(vec![("Q".to_string(), b"ab\"cd".to_vec())]);
        assert_eq!(q.redact_json(r#"{"a":"ab\"cd"}"#), r#"{"a":"[secret Q]"}"#);
    }

    #[test]
    fn keys_are_recognised_and_commands_are_not() {
        for key in [
            "sk-ant-api03-abcdef",
            "my-agent --key sk-proj-xyz",
            "ghp_abcdefabcdef",
            "xoxb-123",
            "TOKEN=0123456789abcdef0123456789abcdef",
        ] {
            assert!(looks_like_key(key), "{key}");
        }
        for cmd in [
            "claude -p \"$(gt prime)\" --output-format stream-json --verbose --dangerously-skip-permissions",
            "codex exec --json --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check \"$(gt prime)\"",
            "my-agent --task \"$(gt prime)\"",
            "desk-lamp",
            "1",
        ] {
            assert!(!looks_like_key(cmd), "{cmd}");
        }
    }

    #[test]
    fn only_regular_named_files_are_read_from_the_mount() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("MY_KEY"), b"v1").unwrap();
        std::fs::write(d.path().join("lower"), b"x").unwrap();
        std::fs::write(d.path().join("BIG"), vec![b'x'; MAX_BYTES as usize + 1]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("LINK")).unwrap();
        std::fs::create_dir(d.path().join("SUB")).unwrap();
        let (found, mut skipped) = mounted(d.path());
        assert_eq!(found, vec![("MY_KEY".to_string(), b"v1".to_vec())]);
        skipped.sort();
        assert_eq!(skipped, ["BIG", "LINK", "SUB", "lower"]);
        assert_eq!(mounted(&d.path().join("absent")).0, vec![]);
    }
}
