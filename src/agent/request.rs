//! The request file format: one JSON file per request in the agent's `outbox/`, written
//! durably (temp, fsync, rename) with a fresh id. The host applies each id at most once.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Larger request files are rejected unread.
pub const MAX_REQUEST_BYTES: u64 = 1 << 20;
/// Larger mail bodies are rejected.
pub const MAX_MAIL_BODY: usize = 64 << 10;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Request {
    pub id: String,
    pub agent: String,
    pub generation: i64,
    pub token: String,
    pub created_at: i64,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    Checkpoint {
        note: String,
        head: Option<String>,
    },
    Done {
        status: DoneStatus,
        note: String,
        head: Option<String>,
    },
    Mail {
        to: String,
        subject: String,
        body: String,
        mail_id: Option<String>,
    },
    Escalate {
        subject: String,
        body: String,
    },
    Read {
        mail_id: String,
    },
    Ack {
        mail_id: String,
    },
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Checkpoint { .. } => "checkpoint",
            Body::Done { .. } => "done",
            Body::Mail { .. } => "mail",
            Body::Escalate { .. } => "escalate",
            Body::Read { .. } => "read",
            Body::Ack { .. } => "ack",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DoneStatus {
    Completed,
    Escalated,
    Deferred,
}

impl DoneStatus {
    /// The bead status a finished saga sets.
    pub fn bead_status(self) -> &'static str {
        match self {
            DoneStatus::Completed => "done",
            DoneStatus::Escalated => "escalated",
            DoneStatus::Deferred => "deferred",
        }
    }
}

/// Write a request into `outbox`; returns once the file is durable.
pub fn submit(outbox: &Path, req: &Request) -> Result<()> {
    let data = serde_json::to_vec(req).map_err(|e| Error::Other(e.to_string()))?;
    crate::util::write_atomic(&outbox.join(format!("{}.json", req.id)), &data)
}
