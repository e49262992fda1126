//! The schema, as forward-only migrations: `MIGRATIONS[i]` takes a database from
//! `user_version = i` to `i + 1`. Never edit a released migration; append one.

pub const MIGRATIONS: &[&str] = &[
    // 1: the whole table list of DESIGN.md "State".
    r#"
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE rigs (
  name           TEXT PRIMARY KEY,
  source         TEXT NOT NULL,
  remote         TEXT,
  default_branch TEXT NOT NULL,
  image          TEXT NOT NULL,
  command        TEXT NOT NULL,
  memory         INTEGER NOT NULL,
  cpus           REAL NOT NULL,
  pids           INTEGER NOT NULL DEFAULT 512,
  network        TEXT NOT NULL DEFAULT 'default',  -- Docker network mode of its agents
  max_polecats   INTEGER NOT NULL,
  created_at     INTEGER NOT NULL,
  version        INTEGER NOT NULL DEFAULT 1
) STRICT;

CREATE TABLE beads (
  id         TEXT PRIMARY KEY,
  rig        TEXT NOT NULL REFERENCES rigs(name),
  title      TEXT NOT NULL,
  body       TEXT NOT NULL DEFAULT '',
  status     TEXT NOT NULL DEFAULT 'open' CHECK (status IN
               ('open','hooked','in_progress','done','failed','escalated','deferred','cancelled')),
  queued_at  INTEGER,          -- set while open and waiting for a free polecat slot
  attempts   INTEGER NOT NULL DEFAULT 0,
  branch     TEXT,             -- where its work lives once slung; kept across attempts
  not_before INTEGER,          -- retry backoff: not re-dispatched before this time
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  version    INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX beads_rig_status ON beads(rig, status);
CREATE INDEX beads_status ON beads(status);

CREATE TABLE agents (
  id         TEXT PRIMARY KEY,  -- "<rig>/<name>"
  rig        TEXT NOT NULL REFERENCES rigs(name),
  name       TEXT NOT NULL,
  state      TEXT NOT NULL DEFAULT 'idle' CHECK (state IN
               ('idle','spawning','running','finishing','dead','nuked')),
  bead       TEXT REFERENCES beads(id),
  branch     TEXT,
  worktree   TEXT,
  generation INTEGER NOT NULL DEFAULT 0,
  dispatch   INTEGER,           -- the current dispatch row
  updated_at INTEGER NOT NULL,
  version    INTEGER NOT NULL DEFAULT 1,
  UNIQUE (rig, name)
) STRICT;
-- Single writer: one agent per bead, one agent per branch.
CREATE UNIQUE INDEX agents_one_per_bead ON agents(bead) WHERE bead IS NOT NULL;
CREATE UNIQUE INDEX agents_one_per_branch ON agents(rig, branch) WHERE branch IS NOT NULL;

CREATE TABLE dispatches (
  id           INTEGER PRIMARY KEY,
  agent        TEXT NOT NULL REFERENCES agents(id),
  bead         TEXT NOT NULL REFERENCES beads(id),
  generation   INTEGER NOT NULL,
  token        TEXT NOT NULL,
  branch       TEXT NOT NULL,
  container_id TEXT,
  started_at   INTEGER NOT NULL,
  ended_at     INTEGER,
  exit_code    INTEGER,
  oom          INTEGER NOT NULL DEFAULT 0,
  reason       TEXT,
  UNIQUE (agent, generation)
) STRICT;
CREATE INDEX dispatches_bead ON dispatches(bead);

CREATE TABLE checkpoints (
  id         INTEGER PRIMARY KEY,
  dispatch   INTEGER NOT NULL REFERENCES dispatches(id),
  bead       TEXT NOT NULL REFERENCES beads(id),
  step       TEXT NOT NULL,     -- 'note' for an agent's checkpoint, else a done-saga step
  note       TEXT,
  head       TEXT,
  created_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX checkpoints_one_per_step ON checkpoints(dispatch, step) WHERE step <> 'note';
CREATE INDEX checkpoints_bead ON checkpoints(bead);

CREATE TABLE mail (
  id           TEXT PRIMARY KEY,  -- the idempotency key
  sender       TEXT NOT NULL,
  recipient    TEXT NOT NULL,
  subject      TEXT NOT NULL,
  body         TEXT NOT NULL,
  sent_at      INTEGER NOT NULL,
  delivered_at INTEGER,
  read_at      INTEGER,
  acked_at     INTEGER
) STRICT;
CREATE INDEX mail_recipient ON mail(recipient, read_at);

CREATE TABLE convoys (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  policy     TEXT NOT NULL,
  state      TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open','landed','partial','failed','closed')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  version    INTEGER NOT NULL DEFAULT 1
) STRICT;

CREATE TABLE convoy_beads (
  convoy TEXT NOT NULL REFERENCES convoys(id),
  bead   TEXT NOT NULL REFERENCES beads(id),
  PRIMARY KEY (convoy, bead)
) STRICT;

CREATE TABLE merge_requests (
  id         INTEGER PRIMARY KEY,
  bead       TEXT NOT NULL REFERENCES beads(id),
  rig        TEXT NOT NULL,
  branch     TEXT NOT NULL,
  commit_id  TEXT NOT NULL,
  pushed_to  TEXT,
  created_at INTEGER NOT NULL,
  UNIQUE (bead, commit_id)
) STRICT;

CREATE TABLE requests (
  id         TEXT PRIMARY KEY,  -- the agent's request id: applied at most once
  agent      TEXT NOT NULL,
  dispatch   INTEGER,
  kind       TEXT NOT NULL,
  applied_at INTEGER NOT NULL
) STRICT;

CREATE TABLE leases (
  name       TEXT PRIMARY KEY,
  holder     TEXT NOT NULL,
  token      INTEGER NOT NULL,  -- fencing token, grows with every acquisition
  expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE events (
  id      INTEGER PRIMARY KEY,
  at      INTEGER NOT NULL,
  actor   TEXT NOT NULL,
  kind    TEXT NOT NULL,
  subject TEXT NOT NULL,
  data    TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX events_at ON events(at);
CREATE INDEX events_subject ON events(subject, id);
"#,
    // 2: `gt rig prune` deletes a finished bead's local branch once its commit is safe
    // on the remote or merged; the merge request remembers when, so doctor knows the
    // branch is gone on purpose. And an index to tell when an agent was last heard from.
    r#"
ALTER TABLE merge_requests ADD COLUMN pruned_at INTEGER;
-- When an agent was last heard from (patrol's quiet-agent report, `polecat list`).
CREATE INDEX requests_dispatch ON requests(dispatch, applied_at);
"#,
    // 3: real coding agents. A rig names its agent preset (`claude`, `codex`, `custom`),
    // the non-secret environment of its agent command (a JSON object), and the names of
    // the town secrets its agents get as read-only files (a JSON array; never values).
    r#"
ALTER TABLE rigs ADD COLUMN agent TEXT NOT NULL DEFAULT 'custom';
ALTER TABLE rigs ADD COLUMN env TEXT NOT NULL DEFAULT '{}';
ALTER TABLE rigs ADD COLUMN secrets TEXT NOT NULL DEFAULT '[]';
"#,
    // 4: usage and cost per dispatch, read from the agent's own report in its output
    // (Claude's stream-json `result`, Codex's `turn.completed` events): data, bounded.
    r#"
CREATE TABLE usage (
  dispatch      INTEGER PRIMARY KEY REFERENCES dispatches(id),
  bead          TEXT NOT NULL,
  rig           TEXT NOT NULL,
  input_tokens  INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cost_usd      REAL,
  recorded_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX usage_rig_at ON usage(rig, recorded_at);
"#,
    // 5: the merge queue lands work. A rig's landing policy; a merge request's state,
    // its age in the queue (kept across bounces, so work sent back is not starved), its
    // landing checkpoint and outcome. And drains: a scope (`*` or a rig) that nothing is
    // dispatched to until `gt resume`. And a rig's choice to fold done notices into one
    // digest mail per patrol pass.
    r#"
ALTER TABLE rigs ADD COLUMN merge TEXT NOT NULL DEFAULT 'off';        -- review | auto | off
ALTER TABLE rigs ADD COLUMN test_command TEXT;                       -- the gate; none: no gate
ALTER TABLE rigs ADD COLUMN merge_style TEXT NOT NULL DEFAULT 'merge'; -- rebase | squash | merge
ALTER TABLE rigs ADD COLUMN gate_secrets INTEGER NOT NULL DEFAULT 0;  -- the gate gets the rig's secrets
ALTER TABLE rigs ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;        -- done notices as one digest
ALTER TABLE merge_requests ADD COLUMN state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN
  ('queued','needs-review','testing','merged','conflict','failed','rejected','superseded'));
ALTER TABLE merge_requests ADD COLUMN queued_at INTEGER;     -- its place in the queue
ALTER TABLE merge_requests ADD COLUMN target TEXT;           -- the branch it lands on
ALTER TABLE merge_requests ADD COLUMN step TEXT;             -- landing checkpoint while testing
ALTER TABLE merge_requests ADD COLUMN base TEXT;             -- target head the candidate is built on
ALTER TABLE merge_requests ADD COLUMN candidate TEXT;        -- target + the change
ALTER TABLE merge_requests ADD COLUMN gate_runs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE merge_requests ADD COLUMN reason TEXT;           -- why it waits, bounced or failed
ALTER TABLE merge_requests ADD COLUMN merged_commit TEXT;
ALTER TABLE merge_requests ADD COLUMN merged_at INTEGER;
ALTER TABLE merge_requests ADD COLUMN updated_at INTEGER;
ALTER TABLE merge_requests ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
UPDATE merge_requests SET queued_at = created_at, updated_at = created_at;
CREATE INDEX merge_requests_rig_state ON merge_requests(rig, state);
CREATE TABLE drains (
  scope    TEXT PRIMARY KEY,   -- '*' for the whole town, else a rig
  mode     TEXT NOT NULL CHECK (mode IN ('drain','stop')),
  since    INTEGER NOT NULL,
  deadline INTEGER             -- a drain's end: remaining agents are stopped then
) STRICT;
"#,
    // 6: where a rig's agents may run on a swarm: placement constraints (a JSON array of
    // `node.labels.gpu==true`-style strings; empty: anywhere).
    r#"
ALTER TABLE rigs ADD COLUMN placement TEXT NOT NULL DEFAULT '[]';
"#,
    // 7 (fix-cost): a dispatch's reported cost that was clamped (implausible against its
    // output, or over a cap) is flagged: it counts for its own bead and rig, never
    // toward another rig's share of the town-wide daily budget.
    r#"
ALTER TABLE usage ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;
"#,
    // 8 (fix-drain): mail for one dispatch of its recipient (a drain's "stop for now", a
    // nudge) names that dispatch's generation, and ends with it; NULL: for the polecat.
    r#"
ALTER TABLE mail ADD COLUMN generation INTEGER;
"#,
];

/// The schema version this binary writes.
pub const CURRENT: i64 = MIGRATIONS.len() as i64;

/// `PRAGMA application_id`: marks a SQLite file as a gt town database ("gt01").
pub const APPLICATION_ID: i64 = 0x6774_3031;
