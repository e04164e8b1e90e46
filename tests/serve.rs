//! `instructmol serve` end to end on the tiny model: two runs sharing one base, plain and
//! streamed chat (the same text), concurrent requests answered exactly as sequential ones
//! (sampled with seeds, so any numerical difference would show), every bad request with its
//! status and field, a full queue (429), a client that disconnects mid-stream (its slot is
//! freed at once), and the API key.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::root;
use serde_json::{json, Value};

/// The prepared BBBP cut and two 2-step tiny runs (different seeds) in a temp folder.
fn fixture() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::temp_dir("serve");
        let o = common::bin()
            .args(["data", "prepare", "--task", "bbbp", "--input"])
            .arg(root().join("tests/data/datasets/bbbp.csv"))
            .arg("--out")
            .arg(dir.join("bbbp"))
            .output()
            .unwrap();
        common::check(&o);
        for (name, seed) in [("run_a", 7), ("run_b", 8)] {
            let config = format!(
                r#"output_dir = "{out}"
[model]
llm = "{llm}"
template = "chatml"
max_length = 256
[data]
train = "{train}"
max_train_examples = 8
[train]
epochs = 1
max_steps = 2
batch_size = 4
lr = 1e-3
seed = {seed}
save_every = 2
[lora]
r = 4
alpha = 8.0
dropout = 0.0
targets = ["q_proj", "v_proj"]
"#,
                out = dir.join(name).display(),
                llm = root().join("tests/data/tiny_model").display(),
                train = dir.join("bbbp/train.jsonl").display(),
            );
            let cfg = dir.join(format!("{name}.toml"));
            std::fs::write(&cfg, config).unwrap();
            common::check(
                &common::bin()
                    .arg("finetune")
                    .arg("--config")
                    .arg(&cfg)
                    .output()
                    .unwrap(),
            );
        }
        dir
    })
}

/// SMILES of the first `n` training rows.
fn molecules(n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(fixture().join("bbbp/train.jsonl")).unwrap();
    text.lines()
        .take(n)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["smiles"].as_str().unwrap().to_string()
        })
        .collect()
}

/// A running server; killed on drop. Its stderr lines are collected.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let dir = fixture();
        let mut child = common::bin()
            .arg("serve")
            .arg("--run")
            .arg(format!("a={}", dir.join("run_a").display()))
            .arg("--run")
            .arg(format!("b={}", dir.join("run_b").display()))
            .args(["--port", "0"])
            .args(extra)
            .env("RAYON_NUM_THREADS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("serve: listening on http://") {
                    let _ = tx.send(addr.to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start: {:?}", log.lock().unwrap()));
        Server { child, addr, log }
    }

    /// The JSON request-log lines of the server.
    fn request_logs(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        s
    }

    /// Sends one request (`Connection: close`) and returns status and body.
    fn request(&self, method: &str, path: &str, body: &[u8], headers: &[&str]) -> (u16, String) {
        let mut s = self.connect();
        write_request(&mut s, method, path, body, headers);
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        parse_response(&raw)
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self.request("POST", path, body.to_string().as_bytes(), &[]);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn write_request(s: &mut TcpStream, method: &str, path: &str, body: &[u8], headers: &[&str]) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
}

/// Status and body of a raw HTTP/1.1 response (chunked bodies decoded).
fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("no header end");
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if !chunked {
        return (status, body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    (status, out)
}

fn chat_body(model: &str, smiles: &str, seed: u64, max_tokens: usize) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": [
            {"type": "molecule", "smiles": smiles},
            {"type": "text", "text": "Describe this molecule."}]}],
        "temperature": 1.0,
        "seed": seed,
        "max_tokens": max_tokens,
    })
}

fn answer(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no answer in {v}"))
        .to_string()
}

/// The `data:` payloads of an SSE body.
fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

/// A server for one test, bodies limited to 64 KiB.
fn server() -> Server {
    Server::start(&["--max-batch", "16", "--body-limit", "65536"])
}

#[test]
fn models_health_and_molecules() {
    let s = server();
    let (status, body) = s.request("GET", "/health", b"", &[]);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, json!({"status": "ok", "running": 0, "queued": 0}));
    let (status, body) = s.request("GET", "/v1/models", b"", &[]);
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(v["data"][0]["task"], "bbbp");
    assert_eq!(v["data"][0]["yes_no"], true);
    let (status, v) = s.post("/v1/molecules", &json!({"smiles": "OCC"}));
    assert_eq!(status, 200);
    assert_eq!(
        (
            v["valid"].clone(),
            v["canonical_smiles"].clone(),
            v["atoms"].clone()
        ),
        (json!(true), json!("CCO"), json!(3))
    );
    assert_eq!(v["selfies"], "[O][C][C]");
    let (_, v) = s.post("/v1/molecules", &json!({"selfies": "[C][C][O]"}));
    assert_eq!(v["canonical_smiles"], "CCO");
    let (status, v) = s.post("/v1/molecules", &json!({"smiles": "CC(=O"}));
    assert_eq!(status, 200);
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"]["position"], 2, "{v}");
    let (status, v) = s.post("/v1/molecules", &json!({"smiles": 5}));
    assert_eq!(
        (status, v["error"]["param"].clone()),
        (400, json!("body.smiles"))
    );
    // The page is served from the binary.
    let (status, body) = s.request("GET", "/", b"", &[]);
    assert_eq!(status, 200);
    assert!(body.contains("<html"), "{body}");
}

#[test]
fn plain_and_streamed_answers_agree() {
    let s = server();
    let smiles = &molecules(1)[0];
    for model in ["a", "b"] {
        let mut body = chat_body(model, smiles, 11, 20);
        body["prob_yes"] = json!(true);
        body["logprobs"] = json!(true);
        body["top_logprobs"] = json!(3);
        let (status, plain) = s.post("/v1/chat/completions", &body);
        assert_eq!(status, 200, "{plain}");
        let text = answer(&plain);
        assert_eq!(plain["object"], "chat.completion");
        assert_eq!(plain["model"], model);
        let usage = &plain["usage"];
        let completion = usage["completion_tokens"].as_u64().unwrap();
        assert!(completion > 0 && completion <= 20, "{usage}");
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + completion
        );
        let p = plain["choices"][0]["prob_yes"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{p}");
        let lps = plain["choices"][0]["logprobs"]["content"]
            .as_array()
            .unwrap();
        assert_eq!(lps.len() as u64, completion);
        for lp in lps {
            let top = lp["top_logprobs"].as_array().unwrap();
            assert_eq!(top.len(), 3);
            assert!(lp["logprob"].as_f64().unwrap() <= 0.0);
            assert!(top[0]["logprob"].as_f64() >= top[2]["logprob"].as_f64());
        }

        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let (status, raw) = s.request(
            "POST",
            "/v1/chat/completions",
            body.to_string().as_bytes(),
            &[],
        );
        assert_eq!(status, 200);
        let events = sse_events(&raw);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{raw}");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let streamed: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(streamed, text, "model {model}");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(
            finish["choices"][0]["finish_reason"],
            plain["choices"][0]["finish_reason"]
        );
        assert_eq!(finish["choices"][0]["prob_yes"].as_f64(), Some(p));
        assert_eq!(chunks.last().unwrap()["usage"], *usage);
    }
    // The two runs share a base but answer with their own adapters.
    let mut body = chat_body("a", smiles, 11, 20);
    body["logprobs"] = json!(true);
    let (_, a) = s.post("/v1/chat/completions", &body);
    body["model"] = json!("b");
    let (_, b) = s.post("/v1/chat/completions", &body);
    assert!(a["choices"][0]["logprobs"]["content"].is_array(), "{a}");
    assert_ne!(
        a["choices"][0]["logprobs"], b["choices"][0]["logprobs"],
        "both runs gave the same answer"
    );
}

#[test]
fn concurrent_requests_answer_as_sequential_ones() {
    let s = server();
    let mols = molecules(16);
    let bodies: Vec<Value> = mols
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut b = chat_body(if i % 3 == 0 { "b" } else { "a" }, m, i as u64, 12 + i);
            b["logprobs"] = json!(true);
            b
        })
        .collect();
    let one = |b: &Value| {
        let (status, v) = s.post("/v1/chat/completions", b);
        assert_eq!(status, 200, "{v}");
        (answer(&v), v["choices"][0]["logprobs"].clone())
    };
    let sequential: Vec<_> = bodies.iter().map(one).collect();
    let concurrent: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = bodies.iter().map(|b| scope.spawn(move || one(b))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (seq, conc)) in sequential.iter().zip(&concurrent).enumerate() {
        assert_eq!(seq.0, conc.0, "request {i}: text differs");
        // Token by token: the same ids (log-probabilities may move in the last bits).
        let ids = |lp: &Value| -> Vec<String> {
            lp["content"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["token"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&seq.1), ids(&conc.1), "request {i}");
    }
    // They did decode together.
    let peak = s
        .request_logs()
        .iter()
        .filter_map(|l| l["peak_batch"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(peak > 1, "no request shared a batch (peak batch {peak})");
}

#[test]
fn bad_requests_get_openai_errors() {
    let s = server();
    let good = chat_body("a", "CCO", 1, 4);
    let expect = |status: u16, v: &Value, param: Option<&str>, what: &str| {
        assert_eq!(v["error"]["param"].as_str(), param, "{what}: {v}");
        assert!(v["error"]["message"].as_str().is_some(), "{what}: {v}");
        let _ = status;
    };
    // Malformed JSON.
    let (status, text) = s.request("POST", "/v1/chat/completions", b"{\"messages\": [", &[]);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status, 400);
    expect(400, &v, Some("body"), "malformed");
    assert_eq!(v["error"]["code"], "invalid_json");
    // Wrong types.
    let mut b = good.clone();
    b["temperature"] = json!("hot");
    let (status, v) = s.post("/v1/chat/completions", &b);
    assert_eq!(status, 400);
    expect(400, &v, Some("temperature"), "temperature");
    let mut b = good.clone();
    b["messages"] = json!("hi");
    let (status, v) = s.post("/v1/chat/completions", &b);
    assert_eq!(status, 400);
    expect(400, &v, Some("messages"), "messages");
    // Unknown model.
    let mut b = good.clone();
    b["model"] = json!("gpt-4");
    let (status, v) = s.post("/v1/chat/completions", &b);
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], "model_not_found");
    // Invalid SMILES, with its position.
    let b = chat_body("a", "C1CC(", 1, 4);
    let (status, v) = s.post("/v1/chat/completions", &b);
    assert_eq!(status, 400);
    expect(400, &v, Some("molecule"), "smiles");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at position"),
        "{v}"
    );
    // A prompt longer than the model takes.
    let mut b = good.clone();
    b["messages"][0]["content"][1]["text"] = json!("why ".repeat(400));
    let (status, v) = s.post("/v1/chat/completions", &b);
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    // A body over the limit.
    let mut b = good.clone();
    b["messages"][0]["content"][1]["text"] = json!("x".repeat(70_000));
    let (status, v) = s.post("/v1/chat/completions", &b);
    assert_eq!(status, 413, "{v}");
    // No molecule; an unknown route.
    let (status, v) = s.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(status, 400);
    expect(400, &v, Some("messages"), "no molecule");
    let (status, _) = s.request("GET", "/v1/nothing", b"", &[]);
    assert_eq!(status, 404);
    // The server still answers.
    let (status, _) = s.post("/v1/chat/completions", &good);
    assert_eq!(status, 200);
}

/// One try of [`full_queue_429_and_disconnect_frees_the_slot`]: `None` when the long request
/// ended before the queued one arrived (nothing holds the slot then: the tiny model decodes
/// its 1,900 tokens in well under a second when the machine is busy with other tests' servers
/// and this thread is slow), so the scenario never happened and is tried again.
fn queue_scenario() -> Option<()> {
    let s = Server::start(&["--max-batch", "1", "--queue", "1"]);
    let long = {
        let mut b = chat_body("a", "CCO", 1, 1900);
        b["temperature"] = json!(0);
        b["stream"] = json!(true);
        b
    };
    // A long streamed request takes the only slot; read its first event, then hang up.
    let mut first = s.connect();
    write_request(
        &mut first,
        "POST",
        "/v1/chat/completions",
        long.to_string().as_bytes(),
        &[],
    );
    let mut buf = [0u8; 512];
    let n = first.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));
    // While it runs: one request waits in the queue, the next is refused.
    let waiting = std::thread::spawn({
        let addr = s.addr.clone();
        let body = chat_body("a", "CCO", 2, 3);
        move || {
            let mut c = TcpStream::connect(addr).unwrap();
            write_request(
                &mut c,
                "POST",
                "/v1/chat/completions",
                body.to_string().as_bytes(),
                &[],
            );
            let mut raw = Vec::new();
            c.read_to_end(&mut raw).unwrap();
            parse_response(&raw).0
        }
    });
    // Wait until the server says the long request decodes and the other one waits.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = s.request("GET", "/health", b"", &[]);
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["running"] == 1 && v["queued"] == 1 {
            break;
        }
        if waiting.is_finished() {
            // Answered without waiting: the long request had already ended.
            assert_eq!(waiting.join().unwrap(), 200);
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "never one running, one queued: {v}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let (status, refused) = s.post("/v1/chat/completions", &chat_body("a", "CCO", 3, 3));
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], "queue_full");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "429 was not immediate"
    );
    // Hang up on the long request: its slot is freed and the queued request is answered.
    first.shutdown(Shutdown::Both).unwrap();
    drop(first);
    assert_eq!(waiting.join().unwrap(), 200);
    std::thread::sleep(Duration::from_millis(200));
    let logs = s.request_logs();
    let gone = logs
        .iter()
        .find(|l| l["outcome"] == "disconnected")
        .unwrap_or_else(|| panic!("no disconnected request in {logs:?}"));
    assert!(gone["completion_tokens"].as_u64().unwrap() < 1900, "{gone}");
    assert!(logs
        .iter()
        .all(|l| l["queue_ms"].is_number() && l["total_ms"].is_number()));
    Some(())
}

#[test]
fn full_queue_429_and_disconnect_frees_the_slot() {
    let tries = 5;
    assert!(
        (0..tries).any(|_| queue_scenario().is_some()),
        "in {tries} tries the long request always ended before a second one could queue"
    );
}

#[test]
fn api_key_is_required_when_set() {
    let s = Server::start(&["--api-key", "sesame"]);
    let (status, text) = s.request("GET", "/v1/models", b"", &[]);
    assert_eq!(status, 401, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (status, _) = s.request("GET", "/v1/models", b"", &["Authorization: Bearer wrong"]);
    assert_eq!(status, 401);
    let (status, _) = s.request("GET", "/v1/models", b"", &["Authorization: Bearer sesame"]);
    assert_eq!(status, 200);
    let body = chat_body("a", "CCO", 1, 2).to_string();
    let (status, _) = s.request("POST", "/v1/chat/completions", body.as_bytes(), &[]);
    assert_eq!(status, 401);
    let (status, _) = s.request(
        "POST",
        "/v1/chat/completions",
        body.as_bytes(),
        &["Authorization: Bearer sesame"],
    );
    assert_eq!(status, 200);
    let (status, _) = s.request("GET", "/health", b"", &[]);
    assert_eq!(status, 200);
}
