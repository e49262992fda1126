//! The adversary's attacks on the first hour's new surfaces: landing into the user's own
//! repository, the mayor's mail about it, the README's first agent. Each test is a
//! hostile agent (a rig command) or hostile content against the real binary, a real
//! engine and real git, and asserts the SAFE behaviour: it fails while the break exists
//! and passes once it is fixed. Attacks whose defence holds stay as tests too.

mod support;

use std::path::{Path, PathBuf};
use support::*;

fn head(dir: &Path, rev: &str) -> String {
    git(dir, &["rev-parse", rev]).trim().to_string()
}

/// The command between the first pair of backticks after `Take it with` / the indented
/// command line of the mayor's mail.
fn mailed_command(body: &str) -> String {
    body.lines()
        .find(|l| l.starts_with("    git "))
        .unwrap_or_else(|| panic!("no command in the mail: {body}"))
        .trim()
        .to_string()
}

// ATTACK (the mail's "exact command"): the user's repository lives at a path a shell
// reads as more than one word, and as code (`my repo`, a `'`, a `$(...)`, a `;`). The
// landing cannot be delivered (a dirty work tree), so gt mails the mayor the command that
// takes the work. Pasted as it is into sh, that command must take the work (the path
// quoted) and run nothing the path spells; `gt mq show` says the same command.
#[test]
fn the_mailed_command_to_take_undelivered_work_quotes_the_users_path() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t
        .root()
        .parent()
        .unwrap()
        .join("src")
        .join("my repo;'x' $(touch pwned-by-path)");
    make_repo(&src);
    local_rig_at(&t, &src, &scripted_agent(""), &[]);
    std::fs::write(src.join("README"), "my own edit\n").unwrap();
    let id = land_one(&t, "a change");
    let mails = t.mayor_mail_id("land-source-api-");
    assert_eq!(mails.len(), 1, "{mails:?}");
    let command = mailed_command(mails[0]["body"].as_str().unwrap());
    let shown = t.ok(&["mq", "show", &id]);
    assert!(shown.contains(&command), "{shown}\n---\n{command}");
    // Pasted in a shell somewhere else: it takes the work, runs nothing the path spells.
    let cwd = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("sh")
        .current_dir(cwd.path())
        .args(["-c", &command])
        .output()
        .unwrap();
    assert!(
        !cwd.path().join("pwned-by-path").exists(),
        "the mailed command ran code from the path: {command}"
    );
    assert!(out.status.success(), "{command}: {out:?}");
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(
        std::fs::read_to_string(src.join("README")).unwrap(),
        "my own edit\n"
    );
    let _: PathBuf = src;
}

/// The rig's clone: `rigs/api/repo`.
fn clone_dir(t: &TestTown) -> PathBuf {
    t.root().join("rigs/api/repo")
}

// ATTACK (hostile tree content delivered into the user's work tree): a mounted agent
// writes, with git's own plumbing, a commit whose tree holds `.git/hooks/post-checkout`
// (and `.GIT/`, `.git. `), which a checkout would write into the user's real `.git` (a
// hook of theirs, run by their next git command). What must hold: gt refuses that work
// when it takes it from the agent (as it does for a remote node's push): the merge
// request never lands, the rig's main never holds such a tree (which would make every
// later delivery fail, and a remote's fsck refuse every later push: one agent poisoning
// the rig), and nothing is written into the user's `.git`.
#[test]
fn a_mounted_agents_commit_with_a_dot_git_tree_is_refused_and_never_reaches_the_users_repo() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t.root().parent().unwrap().join("src").join("api");
    // The worktree holds the same files (its `.git` is git's own file, so the planted
    // names are the ones a case-insensitive or trailing-dot-ignoring filesystem reads as
    // `.git`): what gt commits for the agent at `gt done` is that very tree.
    let agent = r#"set -eu
for d in .GIT '.git. '; do
  mkdir -p "$d/hooks"
  printf '#!/bin/sh\ntouch "$HOME/pwned-by-hook"\n' > "$d/hooks/post-checkout"
  chmod 755 "$d/hooks/post-checkout"
done
hook=$(git hash-object -w .GIT/hooks/post-checkout)
hooks=$(printf "100755 blob $hook\tpost-checkout\n" | git mktree)
dotgit=$(printf "040000 tree $hooks\thooks\n" | git mktree)
root=$( (git ls-tree HEAD; printf "040000 tree $dotgit\t.GIT\n040000 tree $dotgit\t.git. \n") | git mktree)
c=$(git commit-tree "$root" -p HEAD -m "$GT_BEAD: a hook for you")
git update-ref HEAD "$c"
# `gt done` (the agent's side) refuses a worktree its git cannot commit: the request is
# written by hand, as any agent can.
tok=${GT_TOKEN:-$(cat /run/secrets/gt_token 2>/dev/null || sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$GT_MAILBOX/assignment.json")}
id=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$GT_MAILBOX/outbox"
printf '{"id":"%s","agent":"%s","generation":%s,"token":"%s","created_at":%s000,"kind":"done","status":"completed","note":"finished","head":"%s"}' \
  "$id" "$GT_AGENT" "$GT_GENERATION" "$tok" "$(date +%s)" "$c" > "$GT_MAILBOX/outbox/.$id.tmp"
mv "$GT_MAILBOX/outbox/.$id.tmp" "$GT_MAILBOX/outbox/$id.json"
"#;
    make_repo(&src);
    local_rig_at(&t, &src, agent, &[]);
    let before = head(&src, "main");
    let id = t.bead("plant a hook");
    t.ok(&["sling", &id]);
    // Whatever gt makes of it (refused, failed, or waiting for review), it ends its turn.
    t.patrol_until("the agent's work handled", 90, |t| {
        let s = t.bead_status(&id);
        s != "open" && s != "in_progress" && s != "hooked"
    });
    let _ = t.run(&["mq", "approve", &id]);
    for _ in 0..3 {
        t.ok(&["patrol"]);
    }
    let tree = git(&clone_dir(&t), &["ls-tree", "--name-only", "main"]);
    assert!(
        !tree
            .lines()
            .any(|l| l.trim_end_matches(['.', ' ']).eq_ignore_ascii_case(".git")),
        "the rig's main holds a .git tree from an agent: {tree}"
    );
    assert_ne!(mr_state(&t, &id), "merged", "work with a .git tree landed");
    assert_eq!(head(&src, "main"), before);
    assert!(!src.join(".git/hooks/post-checkout").exists());
}

/// The agent script of the README's "Write your first agent", exactly as printed there.
fn readme_agent() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```sh\n# first-agent.sh")
        .expect("README has the first agent");
    let script = &readme[start + "```sh\n".len()..];
    script[..script.find("```").unwrap()].to_string()
}

// ATTACK (the README's first agent, the script people copy, with a hostile bead title):
// a title with `$(...)`, backticks, quotes, `;`, printf's `%` and a leading `-` must be
// data: the agent writes exactly `# TITLE` into its note, commits with the title as the
// message, and nothing the title spells runs (no file appears in its worktree/branch).
#[test]
fn the_readmes_first_agent_treats_a_hostile_bead_title_as_text() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t.root().parent().unwrap().join("src").join("api");
    make_repo(&src);
    local_rig_at(&t, &src, &readme_agent(), &[]);
    let title = r#"-n $(touch pwned1) `touch pwned2` "; touch pwned3; " ' %s %n \ $GT_BEAD"#;
    let id = t
        .ok(&["bead", "create", "--rig", "api", "--", title])
        .trim()
        .to_string();
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    let branch = format!("polecat/furiosa/{id}");
    let files = git(&clone_dir(&t), &["ls-tree", "-r", "--name-only", &branch]);
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        vec!["README".to_string(), format!("notes/{id}.md")],
        "{files}"
    );
    let note = git(
        &clone_dir(&t),
        &["show", &format!("{branch}:notes/{id}.md")],
    );
    assert_eq!(note, format!("# {title}\n"));
    let subject = git(&clone_dir(&t), &["log", "-1", "--format=%s", &branch]);
    assert_eq!(subject.trim_end_matches('\n'), title);
}

// ATTACK (the agent's private git dir, new this week, meets delivery into the user's
// repository): with git working normally in its box, the agent moves its own view's
// `main` to its commit, tags it `v9`, makes a branch for another polecat, packs its refs,
// and sets `core.hooksPath`/`core.fsmonitor` in its private config to a script that
// would mark the host. What must hold: the host's rig repository keeps its main, tags,
// branches and config; after review and landing, the user's repository gets the landed
// main and nothing else (no tag, no agent branch), and no hook or fsmonitor of the
// agent's ever runs on the host.
#[test]
fn an_agents_private_refs_tags_and_config_never_reach_the_rig_or_the_users_repository() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t.root().parent().unwrap().join("src").join("api");
    let marker = t.root().parent().unwrap().join("pwned-by-agent-config");
    let agent = format!(
        r#"set -eu
printf '#!/bin/sh\ntouch {m}\n' > /tmp/evil.sh; chmod 755 /tmp/evil.sh
mkdir -p /tmp/hooks; for h in post-checkout pre-push post-merge reference-transaction push-to-checkout post-receive; do cp /tmp/evil.sh /tmp/hooks/$h; done
git config core.hooksPath /tmp/hooks
git config core.fsmonitor /tmp/evil.sh
echo "work by $GT_AGENT" > "work-$GT_BEAD.txt"
git add . && git commit -q -m "$GT_BEAD: work"
c=$(git rev-parse HEAD)
git update-ref refs/heads/main "$c"
git tag -a v9 -m "a tag of mine" "$c"
git tag v9-light "$c"
git branch polecat/nux/api-zzz "$c"
git pack-refs --all
gt done -m "finished $GT_BEAD"
"#,
        m = marker.display()
    );
    make_repo(&src);
    local_rig_at(&t, &src, &agent, &[]);
    let clone = clone_dir(&t);
    let config_before = std::fs::read_to_string(clone.join(".git/config")).unwrap();
    let main_before = head(&clone, "refs/heads/main");
    let id = t.bead("a change");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    assert_eq!(
        head(&clone, "refs/heads/main"),
        main_before,
        "the agent moved main"
    );
    assert_eq!(
        git(&clone, &["tag", "--list"]).trim(),
        "",
        "an agent's tag in the rig"
    );
    assert_eq!(
        git(&clone, &["branch", "--list", "polecat/nux/*"]).trim(),
        "",
        "a branch the agent made in the rig"
    );
    assert_eq!(
        std::fs::read_to_string(clone.join(".git/config")).unwrap(),
        config_before
    );
    t.ok(&["mq", "approve", &id]);
    t.patrol_until("merged", 90, |t| mr_state(t, &id) == "merged");
    t.patrol_until("delivered", 30, |t| {
        head(&src, "main") == head(&clone_dir(t), "refs/heads/main")
    });
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(
        git(&src, &["tag", "--list"]).trim(),
        "",
        "a tag reached the user"
    );
    assert_eq!(
        git(&src, &["for-each-ref", "--format=%(refname)"])
            .lines()
            .filter(|r| *r != "refs/heads/main")
            .collect::<Vec<_>>(),
        Vec::<&str>::new(),
        "only main reaches the user's repository"
    );
    assert_eq!(git(&src, &["status", "--porcelain"]).trim(), "");
    assert!(
        !marker.exists(),
        "a hook or fsmonitor of the agent's ran on the host"
    );
}

// ATTACK (the agent's private git dir is seeded with a copy of the rig's config): a rig
// cloned from `https://user:TOKEN@host/repo` keeps that URL, token and all, in its
// clone's config (as `git clone` writes it), and a user's `http.extraHeader` holds a
// bearer token. The agent reads its git config (`git config --list`, the file itself)
// and commits what it saw. What must hold: no credential of the rig's reaches a
// container (DESIGN: the key never enters a container); the URL's host and path may.
#[test]
fn the_rigs_remote_credentials_never_reach_the_agents_private_git_config() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t.root().parent().unwrap().join("src").join("api");
    let agent = r#"set -eu
common=$(git rev-parse --git-common-dir)
{ git config --list; cat "$common/config"; } > seen.txt
git add seen.txt && git commit -q -m "$GT_BEAD: what I saw"
gt done -m "finished $GT_BEAD"
"#;
    make_repo(&src);
    local_rig_at(&t, &src, agent, &[]);
    let clone = clone_dir(&t);
    // What `gt rig add https://gt-user:…@git.example.com/o/api.git` leaves in the clone.
    git(
        &clone,
        &[
            "config",
            "remote.origin.url",
            "https://gt-user:s3cr3t-token-xyz@git.example.com/o/api.git",
        ],
    );
    git(
        &clone,
        &[
            "config",
            "remote.origin.pushurl",
            "ssh://deploy:s3cr3t-push-xyz@git.example.com/o/api.git",
        ],
    );
    git(
        &clone,
        &[
            "config",
            "http.https://git.example.com/.extraHeader",
            "Authorization: Bearer s3cr3t-header-xyz",
        ],
    );
    let id = t.bead("look around");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    let seen = git(&clone, &["show", &format!("polecat/furiosa/{id}:seen.txt")]);
    assert!(seen.contains("git.example.com/o/api.git"), "{seen}");
    assert!(
        !seen.contains("s3cr3t"),
        "a credential reached the agent:\n{seen}"
    );
}

// ATTACK (agent text on a person's terminal): a checkpoint note that carries the rest of
// Unicode's bidi controls (the marks U+200E, U+200F, U+061C, which reorder what follows
// them like the overrides gt already escapes) and its line and paragraph separators
// (U+2028, U+2029: a line break to Unicode, to a pager and to many terminals), to fake a
// gt field line under the checkpoint. What must hold: `gt bead show` shows each of them
// as a visible escape, never the character itself.
#[test]
fn a_checkpoint_note_with_bidi_marks_and_unicode_line_separators_is_shown_escaped() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t.root().parent().unwrap().join("src").join("api");
    let agent = r#"set -eu
gt checkpoint -m "$(printf 'step 1\342\200\250status:   done\342\200\251\342\200\217reversed\342\200\216 \330\234x')"
echo work > work.txt && git add work.txt && git commit -q -m work
gt done -m finished
"#;
    make_repo(&src);
    local_rig_at(&t, &src, agent, &[]);
    let id = t.bead("a note");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    let shown = t.ok(&["bead", "show", &id]);
    assert!(shown.contains("checkpoint: step 1"), "{shown}");
    for c in ['\u{2028}', '\u{2029}', '\u{200e}', '\u{200f}', '\u{61c}'] {
        assert!(
            !shown.contains(c),
            "{:?} reached the terminal as it is:\n{shown}",
            c
        );
    }
    assert!(shown.contains("\\u{2028}"), "{shown}");
}
