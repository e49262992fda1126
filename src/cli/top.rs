//! `gt top`: the live view of the town. The data comes from `town::top` (a snapshot of
//! the database plus the engine's last answer); this file draws it with ratatui over
//! crossterm, or as plain tables when stdout is not a terminal, and turns keys into the
//! same use cases the commands call (`gt polecat nuke`, `gt mail read`, …).

use super::{Global, output};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::state::merge_requests::MrState;
use crate::town::Town;
use crate::town::top::{AgentView, Engine, MrView, Snapshot};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph, Wrap};
use std::io::IsTerminal;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A live full-screen view of the town: problems first, then every working polecat.
///
/// The problems panel lists what needs a person: a Docker engine that does not
/// answer, the circuit breaker open, patrol not running or lagging, a rig's image
/// missing, a disk nearly full, stalled or quiet agents, failed or escalated beads, and
/// merge requests waiting for review or failing to land. Below it, per rig, each polecat
/// holding a bead: its bead, state, attempt (TRY: the bead's attempts as patrol counts
/// them, of max_attempts; a `gt bead reopen` starts them again, a drain or a stop from
/// outside spends none), time since its dispatch started, when it was last heard from,
/// the checkpoint it goes on from (its own, else an earlier attempt's, labelled
/// "(attempt N)") and its last line of output; then the merge queue and the convoys when
/// there are any. A rig's open beads and its queued ones are counted apart, as in `gt
/// status`. Reasons show their first line (`gt mq show ID` has the rest). The top line
/// counts the mayor's unread mail.
///
/// It only reads the database (a nuke and reading a message are the only changes, made
/// as the commands make them) and asks the engine once per refresh; it redraws on a key,
/// when the event log moves, and every --interval. Text written by agents is shown
/// escaped, and secrets as `[secret NAME]`. NO_COLOR turns colours off.
///
/// Keys: j / k (or ↓ / ↑) select an agent or a merge request; Enter (or f) follows the
/// selected agent's output, as `gt peek -f` does (Esc goes back); n nukes the selected
/// agent after a y/n question, as `gt polecat nuke` does; a approves the selected merge
/// request after a y/n question (`gt mq approve`), r rejects it with the reason you type
/// (`gt mq reject -m`); m opens the mayor's mail (Enter reads a message and marks it
/// read; oldest first, as `gt mail inbox` lists them); q or Esc quits (Ctrl-C too).
///
/// When stdout is not a terminal it prints the same as plain tables, again every
/// --interval (with --once: one snapshot, then exits; with --json: the snapshot as JSON).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt top                       # the live view
  gt top --interval 5s         # refresh less often
  gt top --once                # one plain snapshot, e.g. for a log or a script
  gt top --once --json         # the same as JSON"#)]
pub struct TopArgs {
    /// Print one snapshot and exit (plain tables, or JSON with --json).
    #[arg(long)]
    pub once: bool,
    /// How often to refresh: the data of the live view, or a new table when stdout is
    /// not a terminal (at least 100ms).
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub interval: String,
}

pub fn top(g: &Global, args: &TopArgs) -> Result<()> {
    let interval = crate::util::check_duration(&args.interval, Duration::from_millis(100))
        .map_err(|why| {
            Error::usage(format!("--interval {:?} {why}", args.interval))
                .with_hint("use e.g. 500ms, 2s or 1m")
        })?;
    let town = g.town()?;
    let tty = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if args.once || g.json || !tty {
        return plain(g, &town, args.once, interval);
    }
    live(town, interval)
}

/// Ask the engine now (a failed connection is an answer too: "down").
fn ask_engine(town: &Town, rt: &mut Option<Box<dyn Runtime>>) -> Engine {
    let r = match rt {
        Some(r) => r,
        None => match crate::runtime::connect(&town.config.runtime) {
            Ok(r) => rt.insert(r),
            Err(e) => return Engine::down(&e),
        },
    };
    let e = crate::town::top::probe(town, r.as_ref());
    if e.error.is_some() {
        // Connect afresh next time: the engine may have restarted on a new socket.
        *rt = None;
    }
    e
}

// ---- plain output (not a terminal, --once, --json) ----

fn plain(g: &Global, town: &Town, once: bool, interval: Duration) -> Result<()> {
    let mut rt = None;
    loop {
        let engine = ask_engine(town, &mut rt);
        let s = crate::town::top::snapshot(town, Some(&engine), crate::util::now_ms())?;
        if g.json {
            if once {
                output::json(&s)?;
            } else {
                let line = serde_json::to_string(&s).map_err(|e| Error::Other(e.to_string()))?;
                output::println_out(&line)?;
            }
        } else {
            output::println_out(&plain_text(&s))?;
        }
        if once {
            return Ok(());
        }
        std::thread::sleep(interval);
        if !g.json {
            output::println_out("")?;
        }
    }
}

/// The snapshot as plain text: a summary line, then tables (every cell escaped).
pub fn plain_text(s: &Snapshot) -> String {
    let now = s.at;
    let mut out = format!(
        "gt top: {} at {}\n{}\n",
        output::safe_line(&s.town),
        output::time(now),
        summary(s)
    );
    if s.problems.is_empty() {
        out += "\nno problems\n";
    } else {
        out += &format!("\nPROBLEMS ({})\n", s.problems.len());
        let mut t = output::Table::new(&["kind", "problem"]);
        for p in &s.problems {
            t.row(vec![p.kind.as_str().into(), p.text.clone()]);
        }
        out += &t.render();
        out.push('\n');
    }
    let agents: Vec<&AgentView> = s.rigs.iter().flat_map(|r| &r.agents).collect();
    out += "\nAGENTS\n";
    if agents.is_empty() {
        out += "no polecat holds a bead\n";
    } else {
        let mut t = output::Table::new(&[
            "agent",
            "bead",
            "state",
            "try",
            "up",
            "heard",
            "checkpoint",
            "output",
        ]);
        for a in agents {
            t.row(vec![
                a.id.clone(),
                a.bead.clone(),
                agent_state(a),
                format!("{}/{}", a.attempt, a.max_attempts),
                ago(a.started_at, now),
                ago(a.last_heard, now),
                a.checkpoint
                    .as_ref()
                    .map(|c| format!("{} ago{}: {}", span(now - c.at), earlier(c), c.note))
                    .unwrap_or_else(|| "-".into()),
                a.last_output.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out += &t.render();
        out.push('\n');
    }
    let mut t = output::Table::new(&["rig", "working", "idle", "open", "queued", "drained"]);
    for r in &s.rigs {
        t.row(vec![
            r.name.clone(),
            r.agents.len().to_string(),
            r.idle.to_string(),
            r.open.to_string(),
            r.queued.to_string(),
            r.drained_since
                .map(|at| format!("{} ago", span(now - at)))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    if !t.is_empty() {
        out += "\nRIGS\n";
        out += &t.render();
        out.push('\n');
    }
    if !s.merge_queue.is_empty() {
        out += &format!("\nMERGE QUEUE ({})\n", s.merge_queue.len());
        let mut t = output::Table::new(&["id", "bead", "rig", "state", "waiting", "reason"]);
        for m in &s.merge_queue {
            t.row(vec![
                m.id.to_string(),
                m.bead.clone(),
                m.rig.clone(),
                m.state.as_str().into(),
                span(now - m.age_since),
                // The first line: a gate's output and a conflict list follow it
                // (`gt mq show ID` has them).
                m.reason_line().unwrap_or("-").to_string(),
            ]);
        }
        out += &t.render();
        out.push('\n');
    }
    if !s.convoys.is_empty() {
        out += "\nCONVOYS\n";
        let mut t = output::Table::new(&["convoy", "name", "state", "done", "failed", "beads"]);
        for c in &s.convoys {
            t.row(vec![
                c.id.clone(),
                c.name.clone(),
                c.state.clone(),
                c.done.to_string(),
                c.failed.to_string(),
                c.total.to_string(),
            ]);
        }
        out += &t.render();
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// The live view's top line, short enough for 80 columns.
fn header(s: &Snapshot) -> String {
    let engine = match s.engine_up {
        None => "engine ?",
        Some(true) => "engine up",
        Some(false) => "ENGINE DOWN",
    };
    let p = &s.patrol;
    let patrol = match (p.running, p.last_started) {
        (true, _) => "patrol running".to_string(),
        (false, Some(at)) => format!("patrol {} ago", span(s.at - at)),
        (false, None) => "patrol never ran".into(),
    };
    let breaker = if s.breaker_open {
        " · BREAKER OPEN"
    } else {
        ""
    };
    format!(
        "gt top · {engine} · {patrol}{breaker} · mayor: {} unread",
        s.mayor_unread
    )
}

/// `engine up · patrol 12s ago · breaker closed · mayor 2 unread`
fn summary(s: &Snapshot) -> String {
    let engine = match s.engine_up {
        None => "engine: asking",
        Some(true) => "engine: up",
        Some(false) => "engine: DOWN",
    };
    let p = &s.patrol;
    let patrol = if p.running {
        "patrol: running now".to_string()
    } else {
        match p.last_started {
            Some(at) => format!("patrol: last pass {} ago", span(s.at - at)),
            None => "patrol: never ran".into(),
        }
    };
    let breaker = if s.breaker_open {
        "breaker: OPEN"
    } else {
        "breaker: closed"
    };
    format!(
        "{engine} · {patrol} · {breaker} · mayor: {} unread",
        s.mayor_unread
    )
}

fn span(ms: i64) -> String {
    crate::util::format_span(ms)
}

/// Whose checkpoint it is, when not this dispatch's: ` (attempt 1)`, ` (earlier)`.
fn earlier(c: &crate::town::top::CheckpointView) -> String {
    match (c.earlier, c.attempt) {
        (false, _) => String::new(),
        (true, Some(n)) => format!(" (attempt {n})"),
        (true, None) => " (earlier)".into(),
    }
}

fn ago(at: Option<i64>, now: i64) -> String {
    at.map(|t| span(now - t)).unwrap_or_else(|| "-".into())
}

/// The state in one word for the live view: a stalled or quiet running agent says so.
fn short_state(a: &AgentView) -> String {
    if a.stalled {
        "stalled".into()
    } else if a.quiet {
        "quiet".into()
    } else {
        a.state.clone()
    }
}

fn agent_state(a: &AgentView) -> String {
    if a.stalled {
        format!("{} (stalled)", a.state)
    } else if a.quiet {
        format!("{} (quiet)", a.state)
    } else {
        a.state.clone()
    }
}

// ---- the live view ----

/// Colours only without NO_COLOR; selection is shown reversed either way.
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    fn bold(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
    fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
}

/// A row a key can act on.
#[derive(Debug, Clone, PartialEq)]
enum Pick {
    Agent(String),
    Mr(i64),
}

enum Mode {
    Main,
    ConfirmNuke(String),
    /// Approve merge request ID? (y/n)
    ConfirmApprove(i64),
    /// Reject merge request `mr`: the reason being typed.
    Reject {
        mr: i64,
        why: String,
    },
    Follow(Box<Follow>),
    Mail {
        list: Vec<crate::state::mail::Mail>,
        state: ListState,
    },
    Letter {
        mail: Box<crate::state::mail::Mail>,
        list: Vec<crate::state::mail::Mail>,
        state: ListState,
        scroll: u16,
    },
}

/// Following one agent's output: chunks come from a thread reading the container's log
/// stream; the thread ends at its next chunk once this is dropped.
struct Follow {
    agent: String,
    /// Complete lines, secrets redacted.
    lines: Vec<String>,
    /// The line being written, as it came (redacted when drawn).
    partial: String,
    rx: Receiver<FollowMsg>,
    ended: Option<String>,
}

enum FollowMsg {
    Chunk(String),
    End(Result<()>),
}

/// Rows of the problems panel (inside its border) before "… and N more": with the
/// merge queue (3 rows) and convoys (2) at most, the agents keep 4 rows in 80×24.
const PROBLEM_ROWS: usize = 6;

/// Rows the status line at the bottom may take (a long report after an action wraps).
const FOOTER_ROWS: usize = 3;
/// The longest rejection reason typed in (a reason is one line for the agent's prime).
const MAX_REASON: usize = 1000;

/// Lines of earlier output shown when following starts.
const FOLLOW_TAIL: usize = 1000;

/// Lines kept while following.
const FOLLOW_KEEP: usize = 2000;

struct App {
    town: Town,
    snap: Snapshot,
    engine: Option<Engine>,
    pick: Option<Pick>,
    mode: Mode,
    message: Option<String>,
    theme: Theme,
}

/// Restores the terminal when dropped: on quit and on an error return (ratatui's panic
/// hook covers a panic).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn live(town: Town, interval: Duration) -> Result<()> {
    // The engine is asked in a thread of its own (with its own connection to the
    // database): a slow or dead engine never freezes the keys.
    let (engine_tx, engine_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let root = town.root.clone();
    std::thread::Builder::new()
        .name("gt-top-engine".into())
        .spawn(move || {
            let Ok(town) = Town::open_at(root) else {
                return;
            };
            let mut rt = None;
            loop {
                if engine_tx.send(ask_engine(&town, &mut rt)).is_err() {
                    return;
                }
                match stop_rx.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })
        .map_err(|e| Error::io("starting the engine thread of gt top", e))?;

    let snap = crate::town::top::snapshot(&town, None, crate::util::now_ms())?;
    let mut app = App {
        town,
        snap,
        engine: None,
        pick: None,
        mode: Mode::Main,
        message: None,
        theme: Theme {
            color: std::env::var_os("NO_COLOR").is_none(),
        },
    };
    app.fix_pick();

    // SIGTERM (or a SIGINT from elsewhere: in raw mode Ctrl-C is a key) ends the loop
    // below like q does, so the terminal is given back.
    crate::interrupt::install();
    let mut terminal =
        ratatui::try_init().map_err(|e| Error::io("setting up the terminal for gt top", e))?;
    let _guard = TerminalGuard;
    let draw_err = |e| Error::io("drawing gt top", e);
    let mut next_refresh = Instant::now() + interval;
    loop {
        terminal.draw(|f| app.draw(f)).map_err(draw_err)?;
        // Short waits only while output streams in; otherwise wake for the event log
        // twice a second (a cheap query) and refresh every interval.
        let wait = if matches!(app.mode, Mode::Follow(_)) {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(500)
        };
        let wait = wait.min(next_refresh.saturating_duration_since(Instant::now()));
        if event::poll(wait).map_err(|e| Error::io("reading keys", e))?
            && let Event::Key(k) = event::read().map_err(|e| Error::io("reading keys", e))?
            && k.kind == KeyEventKind::Press
            && app.key(k, &mut terminal)?
        {
            break;
        }
        if crate::interrupt::received().is_some() {
            break;
        }
        let mut refresh = Instant::now() >= next_refresh;
        while let Ok(e) = engine_rx.try_recv() {
            app.engine = Some(e);
            refresh = true;
        }
        if !refresh {
            let mark = crate::town::top::events_mark(&app.town)?;
            refresh = mark != app.snap.events_mark;
        }
        if refresh {
            app.refresh()?;
            next_refresh = Instant::now() + interval;
        }
        app.drain_follow();
    }
    drop(stop_tx);
    Ok(())
}

impl App {
    fn refresh(&mut self) -> Result<()> {
        self.snap =
            crate::town::top::snapshot(&self.town, self.engine.as_ref(), crate::util::now_ms())?;
        self.fix_pick();
        Ok(())
    }

    /// Everything a key can act on, in screen order: agents, then merge requests.
    fn picks(&self) -> Vec<Pick> {
        let agents = self
            .snap
            .rigs
            .iter()
            .flat_map(|r| &r.agents)
            .map(|a| Pick::Agent(a.id.clone()));
        let mrs = self.snap.merge_queue.iter().map(|m| Pick::Mr(m.id));
        agents.chain(mrs).collect()
    }

    /// Keep the selection on the same row across refreshes; the first row when it left.
    fn fix_pick(&mut self) {
        let picks = self.picks();
        if self.pick.as_ref().is_none_or(|p| !picks.contains(p)) {
            self.pick = picks.into_iter().next();
        }
    }

    fn move_pick(&mut self, by: isize) {
        let picks = self.picks();
        if picks.is_empty() {
            return;
        }
        let at = self
            .pick
            .as_ref()
            .and_then(|p| picks.iter().position(|x| x == p))
            .unwrap_or(0) as isize;
        let to = (at + by).clamp(0, picks.len() as isize - 1) as usize;
        self.pick = Some(picks[to].clone());
    }

    fn picked_mr(&self) -> Option<&MrView> {
        match &self.pick {
            Some(Pick::Mr(id)) => self.snap.merge_queue.iter().find(|m| m.id == *id),
            _ => None,
        }
    }

    fn picked_agent(&self) -> Option<String> {
        match &self.pick {
            Some(Pick::Agent(a)) => Some(a.clone()),
            _ => None,
        }
    }

    /// Handle one key; true to quit.
    fn key(&mut self, k: KeyEvent, terminal: &mut ratatui::DefaultTerminal) -> Result<bool> {
        // Tests panic here to prove the terminal is given back after a crash.
        fail::fail_point!("top.key");
        if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
            return Ok(true);
        }
        self.message = None;
        match &mut self.mode {
            Mode::Main => return self.key_main(k),
            Mode::ConfirmNuke(agent) => {
                let agent = agent.clone();
                self.mode = Mode::Main;
                if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    self.message = Some(format!("nuking {agent}…"));
                    terminal
                        .draw(|f| self.draw(f))
                        .map_err(|e| Error::io("drawing gt top", e))?;
                    self.message = Some(self.nuke(&agent));
                    self.refresh()?;
                } else {
                    self.message = Some(format!("{agent} left alone"));
                }
            }
            Mode::ConfirmApprove(mr) => {
                let mr = *mr;
                self.mode = Mode::Main;
                if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    self.message =
                        Some(approve_mr(&mut self.town, mr).unwrap_or_else(|e| error_text(&e)));
                    self.refresh()?;
                } else {
                    self.message = Some(format!("merge request {mr} left as it was"));
                }
            }
            Mode::Reject { mr, why } => match k.code {
                KeyCode::Esc => {
                    let mr = *mr;
                    self.mode = Mode::Main;
                    self.message = Some(format!("merge request {mr} left as it was"));
                }
                KeyCode::Enter if why.trim().is_empty() => {
                    self.message =
                        Some("a rejection needs a reason: the agent reworking it reads it".into());
                }
                KeyCode::Enter => {
                    let (mr, why) = (*mr, std::mem::take(why));
                    self.mode = Mode::Main;
                    self.message = Some(
                        reject_mr(&mut self.town, mr, &why).unwrap_or_else(|e| error_text(&e)),
                    );
                    self.refresh()?;
                }
                KeyCode::Backspace => {
                    why.pop();
                }
                KeyCode::Char(c) if !c.is_control() && why.len() < MAX_REASON => why.push(c),
                _ => {}
            },
            Mode::Follow(_) => {
                if matches!(
                    k.code,
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('f') | KeyCode::Left
                ) {
                    self.mode = Mode::Main;
                }
            }
            Mode::Mail { list, state } => match k.code {
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('m') | KeyCode::Left => {
                    self.mode = Mode::Main
                }
                KeyCode::Char('j') | KeyCode::Down => step(state, list.len(), 1),
                KeyCode::Char('k') | KeyCode::Up => step(state, list.len(), -1),
                KeyCode::Enter | KeyCode::Right => {
                    if let Some(m) = state.selected().and_then(|i| list.get(i)).cloned() {
                        let (list, state) = (std::mem::take(list), *state);
                        self.open_letter(m, list, state);
                    }
                }
                _ => {}
            },
            Mode::Letter {
                list,
                state,
                scroll,
                ..
            } => match k.code {
                KeyCode::Char('j') | KeyCode::Down => *scroll = scroll.saturating_add(1),
                KeyCode::Char('k') | KeyCode::Up => *scroll = scroll.saturating_sub(1),
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Left => {
                    let (list, state) = (std::mem::take(list), *state);
                    self.mode = Mode::Mail { list, state };
                }
                _ => {}
            },
        }
        Ok(false)
    }

    fn key_main(&mut self, k: KeyEvent) -> Result<bool> {
        match k.code {
            KeyCode::Char('q') | KeyCode::Esc => return Ok(true),
            KeyCode::Char('j') | KeyCode::Down => self.move_pick(1),
            KeyCode::Char('k') | KeyCode::Up => self.move_pick(-1),
            KeyCode::Enter | KeyCode::Char('f') => match self.picked_agent() {
                Some(a) => self.follow(a),
                None => self.message = Some("select an agent to follow (j/k)".into()),
            },
            KeyCode::Char('n') => match self.picked_agent() {
                Some(a) => self.mode = Mode::ConfirmNuke(a),
                None => self.message = Some("select an agent to nuke (j/k)".into()),
            },
            KeyCode::Char('a') => match self.picked_mr() {
                Some(m) if m.state == MrState::NeedsReview => {
                    self.mode = Mode::ConfirmApprove(m.id)
                }
                Some(m) => {
                    self.message = Some(format!(
                        "merge request {} is {}: only one that needs review can be approved",
                        m.id,
                        m.state.as_str()
                    ))
                }
                None => self.message = Some("select a merge request to approve (j/k)".into()),
            },
            KeyCode::Char('r') => match self.picked_mr() {
                Some(m) if matches!(m.state, MrState::NeedsReview | MrState::Queued) => {
                    self.mode = Mode::Reject {
                        mr: m.id,
                        why: String::new(),
                    }
                }
                Some(m) => {
                    self.message = Some(format!(
                        "merge request {} is {}: only one waiting for review or its turn can be rejected",
                        m.id,
                        m.state.as_str()
                    ))
                }
                None => self.message = Some("select a merge request to reject (j/k)".into()),
            },
            KeyCode::Char('m') => {
                let list: Vec<crate::state::mail::Mail> = crate::town::mail::inbox(
                    &self.town,
                    "mayor",
                    &crate::town::mail::Filter::default(),
                )?
                .into_iter()
                .map(|l| l.mail)
                .collect();
                // Oldest first, as `gt mail inbox` lists them.
                let mut state = ListState::default();
                // The first unread one, else the newest.
                state.select((!list.is_empty()).then(|| {
                    list.iter()
                        .position(|m| m.read.is_none())
                        .unwrap_or(list.len() - 1)
                }));
                self.mode = Mode::Mail { list, state };
            }
            _ => {}
        }
        Ok(false)
    }

    fn open_letter(
        &mut self,
        m: crate::state::mail::Mail,
        mut list: Vec<crate::state::mail::Mail>,
        state: ListState,
    ) {
        let mail = match crate::town::mail::mark(&mut self.town, &m.id, "read_at") {
            Ok(read) => {
                if let Some(slot) = list.iter_mut().find(|x| x.id == read.id) {
                    *slot = read.clone();
                }
                read
            }
            Err(e) => {
                self.message = Some(error_text(&e));
                m
            }
        };
        self.mode = Mode::Letter {
            mail: Box::new(mail),
            list,
            state,
            scroll: 0,
        };
    }

    /// Stop following and start a thread streaming `agent`'s container output.
    fn follow(&mut self, agent: String) {
        let (tx, rx) = mpsc::channel();
        let name = match crate::town::polecat::get(&self.town, &agent) {
            Ok(a) => crate::town::sling::container_name(&self.town.id, &a.rig, &a.name),
            Err(e) => {
                self.message = Some(error_text(&e));
                return;
            }
        };
        let runtime = self.town.config.runtime.clone();
        let spawned = std::thread::Builder::new()
            .name("gt-top-follow".into())
            .spawn(move || {
                let r = crate::runtime::connect(&runtime).and_then(|rt| {
                    rt.follow_logs(&name, FOLLOW_TAIL, &mut |chunk| {
                        tx.send(FollowMsg::Chunk(chunk.to_string()))
                            .map_err(|_| Error::Other("stopped following".into()))
                    })
                });
                let _ = tx.send(FollowMsg::End(r));
            });
        if let Err(e) = spawned {
            self.message = Some(format!("cannot follow {agent}: {e}"));
            return;
        }
        self.mode = Mode::Follow(Box::new(Follow {
            agent,
            lines: Vec::new(),
            partial: String::new(),
            rx,
            ended: None,
        }));
    }

    /// Take what the follow thread read so far.
    fn drain_follow(&mut self) {
        let Mode::Follow(f) = &mut self.mode else {
            return;
        };
        loop {
            match f.rx.try_recv() {
                Ok(FollowMsg::Chunk(c)) => {
                    f.partial += &c;
                    if let Some(cut) = f.partial.rfind('\n') {
                        let rest = f.partial.split_off(cut + 1);
                        let done = std::mem::replace(&mut f.partial, rest);
                        // Known secret values never reach the screen; redacted by whole
                        // lines, so a value split between two chunks is caught too.
                        let done = crate::town::secret::redact(&self.town, &done);
                        f.lines.extend(done.lines().map(String::from));
                        let over = f.lines.len().saturating_sub(FOLLOW_KEEP);
                        f.lines.drain(..over);
                    }
                }
                Ok(FollowMsg::End(r)) => {
                    if !f.partial.is_empty() {
                        let rest = std::mem::take(&mut f.partial);
                        f.lines.push(crate::town::secret::redact(&self.town, &rest));
                    }
                    f.ended = Some(match r {
                        Ok(()) => "its container exited".into(),
                        Err(Error::NotFound { .. }) => {
                            // No container: the kept transcript of its last dispatch.
                            match crate::town::top::last_transcript(&self.town, &f.agent) {
                                Ok(Some(t)) => {
                                    let t = crate::town::secret::redact(&self.town, &t);
                                    f.lines = t.lines().map(String::from).collect();
                                    let over = f.lines.len().saturating_sub(FOLLOW_KEEP);
                                    f.lines.drain(..over);
                                    "no container: its last kept transcript".into()
                                }
                                Ok(None) => "no container and no kept transcript".into(),
                                Err(e) => error_text(&e),
                            }
                        }
                        Err(e) => error_text(&e),
                    });
                }
                Err(_) => break,
            }
        }
    }

    fn nuke(&mut self, agent: &str) -> String {
        let done = crate::runtime::connect(&self.town.config.runtime)
            .and_then(|rt| crate::town::polecat::nuke(&mut self.town, rt.as_ref(), agent, false));
        match done {
            Ok(n) => super::polecat::nuked_message(&n).replace('\n', " "),
            Err(e) => error_text(&e),
        }
    }

    // ---- drawing ----

    fn draw(&self, f: &mut Frame) {
        let area = f.area();
        // The status line after an action wraps over up to three rows, never cut off.
        let line = self.footer(area.width);
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        let rows = wrapped_rows(&text, usize::from(area.width)).clamp(1, FOOTER_ROWS) as u16;
        let [body, footer] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(rows)]).areas(area);
        match &self.mode {
            Mode::Follow(fl) => self.draw_follow(f, body, fl),
            Mode::Mail { list, state } => self.draw_mail(f, body, list, state),
            Mode::Letter { mail, scroll, .. } => self.draw_letter(f, body, mail, *scroll),
            Mode::Main | Mode::ConfirmNuke(_) | Mode::ConfirmApprove(_) | Mode::Reject { .. } => {
                self.draw_main(f, body)
            }
        }
        f.render_widget(Paragraph::new(line).wrap(Wrap { trim: true }), footer);
    }

    fn footer(&self, width: u16) -> Line<'static> {
        let t = &self.theme;
        if let Mode::ConfirmNuke(a) = &self.mode {
            return Line::from(Span::styled(
                format!("nuke {a}? its container goes, its bead reopens, its work stays (y/n)"),
                t.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ));
        }
        if let Mode::ConfirmApprove(mr) = &self.mode {
            return Line::from(Span::styled(
                format!("approve merge request {mr}? it joins the queue and lands (y/n)"),
                t.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ));
        }
        if let Some(m) = &self.message {
            return Line::from(Span::styled(output::safe_line(m).into_owned(), t.bold()));
        }
        if let Mode::Reject { mr, why } = &self.mode {
            // The end of what is typed stays in sight.
            let prompt = format!("reject {mr}, why (Enter sends it back, Esc cancels): ");
            let room = usize::from(width).saturating_sub(prompt.chars().count() + 1);
            let skip = why.chars().count().saturating_sub(room);
            let shown: String = why.chars().skip(skip).collect();
            return Line::from(vec![
                Span::styled(prompt, t.fg(Color::Yellow).add_modifier(Modifier::BOLD)),
                Span::raw(output::safe_line(&shown).into_owned()),
                Span::styled("_", t.bold()),
            ]);
        }
        let keys = match &self.mode {
            Mode::Follow(_) => "Esc back · q back",
            Mode::Mail { .. } => "j/k select · Enter read · Esc back",
            Mode::Letter { .. } => "j/k scroll · Esc back",
            _ => match self.pick {
                Some(Pick::Mr(_)) => "j/k select · a approve · r reject · m mail · q quit",
                _ => "j/k select · Enter follow · n nuke · m mail · q quit",
            },
        };
        Line::from(Span::styled(keys, t.dim()))
    }

    fn draw_main(&self, f: &mut Frame, area: Rect) {
        let s = &self.snap;
        let t = &self.theme;
        let (problem_lines, problem_rows) = self.problem_lines(area.width.saturating_sub(2));
        let problems = problem_rows + 2;
        let mq = if s.merge_queue.is_empty() {
            0
        } else {
            s.merge_queue.len().min(3) as u16 + 2
        };
        let convoys = if s.convoys.is_empty() {
            0
        } else {
            s.convoys.len().min(2) as u16 + 2
        };
        let [head, prob, agents, mq_area, conv_area] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(problems),
            Constraint::Min(4),
            Constraint::Length(mq),
            Constraint::Length(convoys),
        ])
        .areas(area);

        let head_style = if s.engine_up == Some(false) || s.breaker_open {
            t.fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            t.bold()
        };
        f.render_widget(
            Paragraph::new(Line::from(Span::styled(header(s), head_style))),
            head,
        );

        let title = format!(" Problems ({}) ", s.problems.len());
        let border = if s.problems.is_empty() {
            t.fg(Color::Green)
        } else {
            t.fg(Color::Red)
        };
        f.render_widget(
            Paragraph::new(problem_lines)
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title(title).border_style(border)),
            prob,
        );

        self.draw_agents(f, agents);
        if mq > 0 {
            self.draw_mq(f, mq_area);
        }
        if convoys > 0 {
            let lines: Vec<Line> = s
                .convoys
                .iter()
                .map(|c| {
                    Line::from(
                        output::safe_line(&format!(
                            "{}  {}  {}  {}/{} done, {} failed",
                            c.id, c.name, c.state, c.done, c.total, c.failed
                        ))
                        .into_owned(),
                    )
                })
                .collect();
            f.render_widget(
                Paragraph::new(lines).block(Block::bordered().title(" Convoys ")),
                conv_area,
            );
        }
    }

    /// The problems, wrapped to `width`, as many whole ones as fit in a few rows (then
    /// how many more); and the rows they take.
    fn problem_lines(&self, width: u16) -> (Vec<Line<'static>>, u16) {
        let t = &self.theme;
        let s = &self.snap;
        if s.problems.is_empty() {
            return (
                vec![Line::from(Span::styled("none", t.fg(Color::Green)))],
                1,
            );
        }
        let width = usize::from(width.max(1));
        let mut lines = Vec::new();
        let mut rows = 0;
        for (i, p) in s.problems.iter().enumerate() {
            let line = Line::from(vec![
                Span::styled(
                    format!("{:<8}", p.kind.as_str()),
                    t.fg(Color::Red).add_modifier(Modifier::BOLD),
                ),
                Span::raw(output::safe_line(&p.text).into_owned()),
            ]);
            let need = line.width().div_ceil(width).max(1);
            let left = s.problems.len() - i - 1;
            // Keep a row for "… more" unless this is the last one.
            let room = PROBLEM_ROWS - usize::from(left > 0);
            if rows + need > room {
                lines.push(Line::from(Span::styled(
                    format!(
                        "… and {} more (`gt top --once` lists them all)",
                        s.problems.len() - i
                    ),
                    t.bold(),
                )));
                rows += 1;
                break;
            }
            lines.push(line);
            rows += need;
        }
        (lines, rows as u16)
    }

    fn draw_agents(&self, f: &mut Frame, area: Rect) {
        let s = &self.snap;
        let t = &self.theme;
        let now = s.at;
        let mut items: Vec<ListItem> = Vec::new();
        let mut selected = None;
        for r in &s.rigs {
            items.push(ListItem::new(Line::from(Span::styled(
                format!(
                    "{}  {} working · {} idle · {} open · {} queued{}",
                    r.name,
                    r.agents.len(),
                    r.idle,
                    r.open,
                    r.queued,
                    r.drained_since
                        .map(|at| format!(" · DRAINED {} ago (`gt resume`)", span(now - at)))
                        .unwrap_or_default()
                ),
                t.bold(),
            ))));
            for a in &r.agents {
                if self.pick.as_ref() == Some(&Pick::Agent(a.id.clone())) {
                    selected = Some(items.len());
                }
                items.push(agent_item(a, now, t));
            }
        }
        if items.is_empty() {
            items.push(ListItem::new("no rigs yet; `gt rig add NAME SOURCE`"));
        }
        let block = Block::bordered().title(" Agents ");
        let inner = block.inner(area);
        f.render_widget(block, area);
        let [head, rows] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
        f.render_widget(
            Paragraph::new(Line::from(Span::styled(
                format!(
                    " {:<11} {:<13} {:<9} {:<4} {:<5} {:<5} {}",
                    "AGENT", "BEAD", "STATE", "TRY", "UP", "HEARD", "TITLE"
                ),
                t.dim(),
            ))),
            head,
        );
        let mut state = ListState::default();
        state.select(selected);
        let list = List::new(items).highlight_style(t.selected());
        f.render_stateful_widget(list, rows, &mut state);
    }

    fn draw_mq(&self, f: &mut Frame, area: Rect) {
        let s = &self.snap;
        let t = &self.theme;
        let items: Vec<ListItem> = s.merge_queue.iter().map(|m| mr_item(m, s.at, t)).collect();
        let mut state = ListState::default();
        state.select(
            s.merge_queue
                .iter()
                .position(|m| self.pick == Some(Pick::Mr(m.id))),
        );
        let list = List::new(items)
            .block(Block::bordered().title(format!(" Merge queue ({}) ", s.merge_queue.len())))
            .highlight_style(t.selected());
        f.render_stateful_widget(list, area, &mut state);
    }

    fn draw_follow(&self, f: &mut Frame, area: Rect, fl: &Follow) {
        let t = &self.theme;
        let inner_h = area.height.saturating_sub(2) as usize;
        let mut lines: Vec<&str> = fl.lines.iter().map(String::as_str).collect();
        // The line still being written, redacted, less an end that could begin a value
        // (the rest of it may be in the next chunk).
        let partial = crate::town::secret::Redactor::of(&self.town).redact_unfinished(&fl.partial);
        if !partial.is_empty() {
            lines.push(&partial);
        }
        let shown: Vec<Line> = lines[lines.len().saturating_sub(inner_h)..]
            .iter()
            .map(|l| Line::from(output::safe_line(l).into_owned()))
            .collect();
        let bead = self
            .snap
            .rigs
            .iter()
            .flat_map(|r| &r.agents)
            .find(|a| a.id == fl.agent)
            .map(|a| format!(" on {}", a.bead))
            .unwrap_or_default();
        let what = match &fl.ended {
            None => "following".to_string(),
            Some(why) => why.clone(),
        };
        let title = output::safe_line(&format!(" {}{bead}: {what} ", fl.agent)).into_owned();
        f.render_widget(
            Paragraph::new(shown).block(
                Block::bordered()
                    .title(Span::styled(title, t.bold()))
                    .border_style(t.fg(Color::Cyan)),
            ),
            area,
        );
    }

    fn draw_mail(
        &self,
        f: &mut Frame,
        area: Rect,
        list: &[crate::state::mail::Mail],
        state: &ListState,
    ) {
        let t = &self.theme;
        let now = self.snap.at;
        let items: Vec<ListItem> = list
            .iter()
            .map(|m| {
                let mark = if m.read.is_none() { "● " } else { "  " };
                let style = if m.read.is_none() {
                    t.bold()
                } else {
                    Style::default()
                };
                ListItem::new(Line::from(Span::styled(
                    format!(
                        "{mark}{:<5} {:<16} {}",
                        span(now - m.sent),
                        output::short(&output::safe_line(&m.from), 16),
                        output::safe_line(&m.subject)
                    ),
                    style,
                )))
            })
            .collect();
        let unread = list.iter().filter(|m| m.read.is_none()).count();
        let mut state = *state;
        let body: Vec<ListItem> = if items.is_empty() {
            vec![ListItem::new("the mayor has no mail")]
        } else {
            items
        };
        f.render_stateful_widget(
            List::new(body)
                .block(Block::bordered().title(format!(
                    " Mayor's mail ({} messages, {unread} unread) ",
                    list.len()
                )))
                .highlight_style(t.selected()),
            area,
            &mut state,
        );
    }

    fn draw_letter(&self, f: &mut Frame, area: Rect, m: &crate::state::mail::Mail, scroll: u16) {
        let t = &self.theme;
        let mut lines = vec![
            Line::from(vec![
                Span::styled("From:    ", t.bold()),
                Span::raw(output::safe_line(&m.from).into_owned()),
            ]),
            Line::from(vec![
                Span::styled("Subject: ", t.bold()),
                Span::raw(output::safe_line(&m.subject).into_owned()),
            ]),
            Line::from(vec![
                Span::styled("Sent:    ", t.bold()),
                Span::raw(format!(
                    "{} ({} ago)",
                    output::time(m.sent),
                    span(self.snap.at - m.sent)
                )),
            ]),
            Line::from(""),
        ];
        // Multi-line agent text: each line escaped on its own (tabs shown as \t).
        lines.extend(
            m.body
                .lines()
                .map(|l| Line::from(output::safe_line(l).into_owned())),
        );
        f.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .scroll((scroll, 0))
                .block(Block::bordered().title(format!(" mail {} ", output::safe_line(&m.id)))),
            area,
        );
    }
}

/// Rows `text` takes wrapped at word boundaries to `width` columns (a word longer than
/// a row is cut across rows), as ratatui's `Wrap` draws it.
fn wrapped_rows(text: &str, width: usize) -> usize {
    use ratatui::text::Line;
    let width = width.max(1);
    let mut rows = 1;
    let mut used = 0;
    for word in text.split(' ') {
        let w = Line::from(word).width();
        let need = if used == 0 { w } else { used + 1 + w };
        if need <= width {
            used = need;
        } else if w <= width {
            rows += 1;
            used = w;
        } else {
            // Cut across rows, starting on a fresh one.
            rows += usize::from(used > 0) + (w - 1) / width;
            used = (w - 1) % width + 1;
        }
    }
    rows
}

fn step(state: &mut ListState, len: usize, by: isize) {
    if len == 0 {
        return;
    }
    let at = state.selected().unwrap_or(0) as isize;
    state.select(Some((at + by).clamp(0, len as isize - 1) as usize));
}

/// Two lines per agent: what it is on and how it goes; its last checkpoint and output.
fn agent_item(a: &AgentView, now: i64, t: &Theme) -> ListItem<'static> {
    let name = a.id.split_once('/').map_or(a.id.as_str(), |(_, n)| n);
    let state_style = if a.stalled || a.quiet || a.state == "dead" {
        t.fg(Color::Red).add_modifier(Modifier::BOLD)
    } else if a.state == "running" {
        t.fg(Color::Green)
    } else {
        t.fg(Color::Yellow)
    };
    let first = Line::from(vec![
        Span::raw(format!(
            " {:<11} {:<13} ",
            output::short(name, 11),
            output::short(&a.bead, 13)
        )),
        Span::styled(
            format!("{:<9}", output::short(&short_state(a), 9)),
            state_style,
        ),
        Span::raw(format!(
            " {:<4} {:<5} {:<5} ",
            format!("{}/{}", a.attempt, a.max_attempts),
            ago(a.started_at, now),
            ago(a.last_heard, now)
        )),
        Span::styled(output::safe_line(&a.bead_title).into_owned(), t.dim()),
    ]);
    let cp = match &a.checkpoint {
        Some(c) => format!(
            "✎ {} ago{}: {}",
            span(now - c.at),
            earlier(c),
            output::safe_line(&c.note)
        ),
        None => "✎ no checkpoint".into(),
    };
    let out = match &a.last_output {
        Some(l) => format!("» {}", output::safe_line(l)),
        None => "» (no output)".into(),
    };
    let second = Line::from(vec![
        Span::raw("   "),
        Span::styled(cp, t.fg(Color::Cyan)),
        Span::raw("  "),
        Span::raw(out),
    ]);
    ListItem::new(vec![first, second])
}

fn mr_item(m: &MrView, now: i64, t: &Theme) -> ListItem<'static> {
    let style = if m.needs_person() {
        t.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    ListItem::new(Line::from(vec![
        Span::raw(format!(" {:<5} {:<13} ", m.id, output::short(&m.bead, 13))),
        Span::styled(format!("{:<13}", m.state.as_str()), style),
        Span::raw(format!(
            " {:<5} {}",
            span(now - m.age_since),
            output::safe_line(m.reason_line().unwrap_or(&m.branch))
        )),
    ]))
}

/// `a`: let a merge request land, as `gt mq approve` does; what happened.
fn approve_mr(town: &mut Town, mr: i64) -> Result<String> {
    let m = crate::town::mq::approve(town, &mr.to_string())?;
    Ok(format!(
        "approved merge request {} ({}): it lands in a coming patrol pass (or `gt mq run`)",
        m.id, m.bead
    ))
}

/// `r`: send a merge request back with a reason, as `gt mq reject -m` does.
fn reject_mr(town: &mut Town, mr: i64, why: &str) -> Result<String> {
    let m = crate::town::mq::reject(town, &mr.to_string(), why)?;
    Ok(format!(
        "rejected merge request {}: bead {} is reopened on {} and will be dispatched again with your reason",
        m.id, m.bead, m.branch
    ))
}

/// An error as one line: what happened, then the hint.
fn error_text(e: &Error) -> String {
    match e.hint() {
        Some(h) => format!("error: {e}; {h}"),
        None => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::wrapped_rows;

    #[test]
    fn a_status_line_takes_the_rows_its_words_wrap_to() {
        assert_eq!(wrapped_rows("", 80), 1);
        assert_eq!(wrapped_rows(&"x".repeat(80), 80), 1);
        assert_eq!(wrapped_rows(&"x".repeat(81), 80), 2);
        // Words move whole to the next row: 3 rows where 50 + 50 + 50 characters would fit 2.
        let w = format!("{} {} {}", "a".repeat(49), "b".repeat(49), "c".repeat(49));
        assert_eq!(wrapped_rows(&w, 80), 3);
        assert_eq!(wrapped_rows("one two", 3), 2);
    }
}
