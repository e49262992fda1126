//! `gt serve`: the agents' network endpoint.

use super::Global;
use crate::error::Result;

/// Serve agents that share no files with this machine (clone workspace), over HTTPS.
///
/// It serves their assignment, inbox and secrets, a clone of their branch, and takes
/// their pushes and requests.
///
/// Needed when agents' containers mount nothing of this machine (`[runtime] workspace
/// = "clone"` in gt.toml, e.g. agents on other Swarm nodes). It listens on
/// `serve.listen` (default 0.0.0.0:7420) and speaks HTTPS only, with a certificate for
/// the host of `serve.url` signed by the town's own CA (made with `openssl` on first run
/// in .gt/serve/; agents trust that CA alone). When the CA is made anew (its files were
/// deleted) or replaced, gt serve issues itself a new certificate from it, on start and
/// within a second while it runs, and says so. Every call names an agent, its generation
/// and its dispatch token: anonymous or wrong calls get 401, a stale generation 409. A
/// push moves only that agent's branch, only fast-forward; a request goes into the same
/// spool and checks as a mounted mailbox. Bodies are bounded (1 MiB per request, 1 GiB
/// per pack, dropped when they stall 10 s); each agent has a request rate
/// (`serve.rate`), at most 16 connections, 8 calls in flight and one push at a time;
/// connections that have not authenticated are closed after 10 s (and, in a flood, the
/// oldest first); an answer the agent stops reading is dropped after 30 s; a pushed pack must
/// carry its new commits and use only objects it was given (`serve.patience` is how long
/// an agent retries an endpoint that does not answer).
///
/// `GET /health` answers without credentials; `gt doctor` checks it. Runs in the
/// foreground until SIGINT or SIGTERM (run it under systemd or next to `gt patrol
/// --watch`).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt serve                             # listen on serve.listen
  gt serve --listen 10.0.0.5:7420      # one address only
  gt doctor                            # checks that it answers"#)]
pub struct ServeArgs {
    /// Listen here instead of serve.listen (ADDRESS:PORT; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub fn serve(g: &Global, a: &ServeArgs) -> Result<()> {
    let town = g.town()?;
    let json = g.json;
    crate::town::serve::run(&town, a.listen.as_deref(), &mut |b| {
        if json {
            let v = serde_json::json!({ "listen": b.listen.to_string(), "url": b.url });
            println!("{v}");
        } else {
            println!("gt serve: listening on {} (agents use {})", b.listen, b.url);
        }
    })
}
