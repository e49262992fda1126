//! A scripted stand-in for a coding agent's model API, on loopback.
//!
//! The real `claude` and `codex` CLIs are pointed at [`Stub::url`] and driven by a script
//! of [`Turn`]s: each model request (`POST …/messages` for Anthropic's Messages API,
//! `POST …/responses` for OpenAI's Responses API) is answered with the next turn, as the
//! SSE stream the CLI expects. A `Turn::Shell` asks the CLI to run a command with its
//! shell tool (Claude's `Bash`, Codex's `exec_command` / `shell_command` / `shell`,
//! whichever the request offers); the CLI runs it and sends the result back in the next
//! request, which gets the next turn. A `Turn::Say` is the final answer that ends the
//! conversation. A request after the script ran out is answered with a final
//! "stub: script exhausted" text, so a mis-scripted test ends instead of hanging.
//!
//! Every response reports [`INPUT_TOKENS`] in and [`OUTPUT_TOKENS`] out, so a CLI's totals
//! are a multiple of these (Claude's stream-json `result` line also carries a
//! `total_cost_usd` that the CLI computes from them with its own price table).
//!
//! Other requests (Anthropic's `count_tokens`, a `GET`/`HEAD` probe) are answered with
//! something plausible and do not advance the script. Every request is recorded for
//! assertions ([`Stub::requests`]).
//!
//! One thread, std only: each connection is answered with `Connection: close`, so the
//! single thread never waits on a client's idle keep-alive connection.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Input tokens reported for every model response.
pub const INPUT_TOKENS: u64 = 100;
/// Output tokens reported for every model response.
pub const OUTPUT_TOKENS: u64 = 20;

/// One model turn.
#[derive(Clone, Debug)]
pub enum Turn {
    /// The model asks to run this shell command with the CLI's shell tool.
    Shell(String),
    /// The model's final text; ends the conversation.
    Say(String),
}

/// One request the stub received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path with its query string, e.g. `/v1/messages?beta=true`.
    pub path: String,
    pub body: String,
}

impl Request {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// A model request: one that advances the script.
    pub fn is_model(&self) -> bool {
        self.method == "POST" && (is_messages(&self.path) || is_responses(&self.path))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Anthropic,
    OpenAi,
    /// Accept, read the request, never answer.
    Hang,
    /// Answer 200 with SSE headers and a first event, then go silent.
    Stall,
    /// Answer every request with this status and an API-shaped error body.
    Refuse(u16),
}

struct State {
    turns: VecDeque<Turn>,
    requests: Vec<Request>,
    /// Model requests answered so far (ids and call ids count with it).
    answered: usize,
}

pub struct Stub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    /// Anthropic's Messages API (Claude Code): `ANTHROPIC_BASE_URL=<url>`.
    pub fn anthropic(turns: Vec<Turn>) -> Stub {
        Stub::start(Mode::Anthropic, turns)
    }

    /// OpenAI's Responses API (Codex): provider `base_url = "<url>/v1"`.
    pub fn openai(turns: Vec<Turn>) -> Stub {
        Stub::start(Mode::OpenAi, turns)
    }

    /// Accepts connections and reads requests, never answers (not even headers).
    pub fn hang() -> Stub {
        Stub::start(Mode::Hang, Vec::new())
    }

    /// Answers 200 with SSE headers and one first event, then never sends more: a stream
    /// that goes idle mid-response.
    pub fn stall() -> Stub {
        Stub::start(Mode::Stall, Vec::new())
    }

    /// Answers every request with 401 and the API's error shape (Anthropic's or OpenAI's,
    /// chosen by the request path).
    pub fn refuse() -> Stub {
        Stub::refuse_with(401)
    }

    /// As [`Stub::refuse`], with this status (e.g. 500).
    pub fn refuse_with(status: u16) -> Stub {
        Stub::start(Mode::Refuse(status), Vec::new())
    }

    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The model requests (those that advanced the script), in order.
    pub fn model_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_model)
            .collect()
    }

    /// Turns not yet played.
    pub fn remaining(&self) -> usize {
        self.state.lock().unwrap().turns.len()
    }

    fn start(mode: Mode, turns: Vec<Turn>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub on loopback");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            turns: turns.into(),
            requests: Vec::new(),
            answered: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("model-stub".into())
                .spawn(move || serve(listener, mode, state, stop))
                .unwrap()
        };
        Stub {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; the thread sees the flag and returns, closing every
        // connection it held open (hung and stalled clients see EOF).
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, mode: Mode, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    // Connections kept open on purpose (hang, stall) until the stub is dropped.
    let mut held: Vec<TcpStream> = Vec::new();
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut conn) = conn else { continue };
        // A client that connects and sends nothing must not wedge the one thread for long.
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let Some(req) = read_request(&mut conn) else {
            continue;
        };
        state.lock().unwrap().requests.push(req.clone());
        match mode {
            Mode::Hang => held.push(conn),
            Mode::Stall => {
                let first = if is_responses(&req.path) {
                    sse(
                        "response.created",
                        json!({"type": "response.created", "response": {"id": "resp_stall"}}),
                    )
                } else {
                    sse("ping", json!({"type": "ping"}))
                };
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                            Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(first.as_bytes());
                let _ = conn.flush();
                held.push(conn);
            }
            Mode::Refuse(status) => {
                let body = if is_responses(&req.path) {
                    json!({"error": {
                        "message": "stub: refused (incorrect API key provided)",
                        "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
                } else {
                    json!({"type": "error", "error": {
                        "type": if status == 401 { "authentication_error" } else { "api_error" },
                        "message": "stub: refused"}})
                };
                respond(&mut conn, status, "application/json", &body.to_string());
            }
            Mode::Anthropic | Mode::OpenAi => answer(&mut conn, mode, &req, &state),
        }
    }
    drop(held);
}

fn answer(conn: &mut TcpStream, mode: Mode, req: &Request, state: &Mutex<State>) {
    let path = req.path.split('?').next().unwrap_or("");
    if req.method != "POST" {
        let body = if path.ends_with("/models") {
            json!({"object": "list", "data": [], "models": []})
        } else {
            json!({})
        };
        respond(conn, 200, "application/json", &body.to_string());
        return;
    }
    if path.ends_with("/count_tokens") {
        let body = json!({"input_tokens": INPUT_TOKENS});
        respond(conn, 200, "application/json", &body.to_string());
        return;
    }
    let wanted = match mode {
        Mode::Anthropic => is_messages(path),
        _ => is_responses(path),
    };
    if !wanted {
        let body = json!({"error": {"type": "not_found_error",
                                    "message": format!("stub: no route {} {}", req.method, path)}});
        respond(conn, 404, "application/json", &body.to_string());
        return;
    }
    let (turn, n) = {
        let mut st = state.lock().unwrap();
        let turn = st
            .turns
            .pop_front()
            .unwrap_or_else(|| Turn::Say("stub: script exhausted".into()));
        st.answered += 1;
        (turn, st.answered - 1)
    };
    let request = req.json();
    let events = match mode {
        Mode::Anthropic => anthropic_events(&turn, n, &request),
        _ => openai_events(&turn, n, &request),
    };
    respond(conn, 200, "text/event-stream", &events);
}

/// The tool names a request offers (Anthropic's and OpenAI's `tools[].name`).
fn offered_tools(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn anthropic_events(turn: &Turn, n: usize, request: &Value) -> String {
    let model = request["model"].as_str().unwrap_or("claude-stub");
    let mut out = sse(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": format!("msg_stub_{n}"), "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
    );
    let stop_reason = match turn {
        Turn::Shell(cmd) => {
            let name = offered_tools(request)
                .into_iter()
                .find(|t| t == "Bash")
                .unwrap_or_else(|| "Bash".into());
            out += &sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {
                    "type": "tool_use", "id": format!("toolu_stub_{n}"), "name": name,
                    "input": {}}}),
            );
            let input = json!({"command": cmd, "description": "scripted by the stub"});
            out += &sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {
                    "type": "input_json_delta", "partial_json": input.to_string()}}),
            );
            "tool_use"
        }
        Turn::Say(text) => {
            out += &sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            );
            out += &sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": text}}),
            );
            "end_turn"
        }
    };
    out += &sse(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    out += &sse(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": OUTPUT_TOKENS}}),
    );
    out += &sse("message_stop", json!({"type": "message_stop"}));
    out
}

fn openai_events(turn: &Turn, n: usize, request: &Value) -> String {
    let id = format!("resp_stub_{n}");
    let model = request["model"].as_str().unwrap_or("stub");
    let item = match turn {
        Turn::Shell(cmd) => {
            // Codex offers one shell tool, depending on its version and the model's
            // metadata: `exec_command` (unified exec, `cmd` string), `shell_command`
            // (`command` string) or `shell` (`command` argv).
            let tools = offered_tools(request);
            let (name, args) = if tools.iter().any(|t| t == "exec_command") {
                ("exec_command", json!({"cmd": cmd}))
            } else if tools.iter().any(|t| t == "shell_command") {
                ("shell_command", json!({"command": cmd}))
            } else if tools.iter().any(|t| t == "shell") {
                ("shell", json!({"command": ["bash", "-lc", cmd]}))
            } else {
                ("exec_command", json!({"cmd": cmd}))
            };
            json!({"type": "function_call", "id": format!("fc_stub_{n}"),
                   "call_id": format!("call_stub_{n}"), "name": name,
                   "arguments": args.to_string(), "status": "completed"})
        }
        Turn::Say(text) => json!({
            "type": "message", "id": format!("msg_stub_{n}"), "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}),
    };
    let mut out = sse(
        "response.created",
        json!({"type": "response.created", "sequence_number": 0, "response": {
            "id": id, "object": "response", "model": model, "status": "in_progress",
            "output": []}}),
    );
    out += &sse(
        "response.output_item.added",
        json!({"type": "response.output_item.added", "sequence_number": 1,
               "output_index": 0, "item": item}),
    );
    out += &sse(
        "response.output_item.done",
        json!({"type": "response.output_item.done", "sequence_number": 2,
               "output_index": 0, "item": item}),
    );
    out += &sse(
        "response.completed",
        json!({"type": "response.completed", "sequence_number": 3, "response": {
            "id": id, "object": "response", "model": model, "status": "completed",
            "output": [item],
            "usage": {"input_tokens": INPUT_TOKENS,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": OUTPUT_TOKENS,
                      "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}}}),
    );
    out
}

fn sse(event: &str, data: Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

fn is_messages(path: &str) -> bool {
    path.split('?').next().unwrap_or("").ends_with("/messages")
}

fn is_responses(path: &str) -> bool {
    path.split('?').next().unwrap_or("").ends_with("/responses")
}

fn respond(conn: &mut TcpStream, status: u16, content_type: &str, body: &str) {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Write);
}

/// One HTTP/1.1 request: request line, headers, and a body by `Content-Length` or
/// chunked transfer encoding. `None` on EOF, timeout or garbage.
fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let (mut length, mut chunked, mut expect_continue) = (0usize, false, false);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse().ok()?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    if expect_continue {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2]; // data and its CRLF
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
