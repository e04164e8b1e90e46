//! Generation from a trained tiny run (tests/data/tiny_model, 2 LoRA steps on the BBBP cut):
//! batched decoding is the same as one row at a time, whatever the batch size; `prob_yes` is
//! the softmax of the first answer position; `generate --input`, `eval --run` and `chat`
//! work end to end through the binary.

mod common;

use common::root;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use candle_core::{DType, Device};
use instructmol::infer::assistant::Assistant;
use instructmol::infer::{
    generate, generate_batch, GenerationConfig, Prompt, RowPrompt, SamplingConfig, YesNoIds,
};

fn bin() -> Command {
    let mut c = common::bin();
    c.env("RAYON_NUM_THREADS", "1");
    c
}

/// The temp folder of this test binary, with the prepared BBBP cut and a 2-step tiny run.
fn fixture() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("im-infer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let o = bin()
            .args(["data", "prepare", "--task", "bbbp", "--input"])
            .arg(root().join("tests/data/datasets/bbbp.csv"))
            .arg("--out")
            .arg(dir.join("bbbp"))
            .output()
            .unwrap();
        common::check(&o);
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
grad_accum = 1
lr = 1e-4
seed = 7
save_every = 2
[lora]
r = 4
alpha = 8.0
dropout = 0.0
targets = ["q_proj", "v_proj"]
"#,
            out = dir.join("run").display(),
            llm = root().join("tests/data/tiny_model").display(),
            train = dir.join("bbbp/train.jsonl").display(),
        );
        std::fs::write(dir.join("run.toml"), config).unwrap();
        let o = bin()
            .arg("finetune")
            .arg("--config")
            .arg(dir.join("run.toml"))
            .output()
            .unwrap();
        common::check(&o);
        dir
    })
}

fn run_dir() -> PathBuf {
    fixture().join("run")
}

/// (smiles, question) of the first `n` training rows.
fn questions(n: usize) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixture().join("bbbp/train.jsonl")).unwrap();
    text.lines()
        .take(n)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let q = v["conversations"][0]["value"].as_str().unwrap().to_string();
            (v["smiles"].as_str().unwrap().to_string(), q)
        })
        .collect()
}

fn assistant() -> Assistant {
    Assistant::from_run(
        &run_dir(),
        None,
        None,
        (DType::F32, &Device::Cpu, Default::default()),
    )
    .unwrap()
}

/// Tokens and text of every prompt, generated `batch` rows at a time (row i seeded with
/// `seed + i`).
fn tokens_by_batch(
    a: &Assistant,
    prompts: &[Prompt],
    cfg: &GenerationConfig,
    batch: usize,
) -> Vec<(Vec<u32>, String)> {
    let rows: Vec<RowPrompt> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| RowPrompt {
            prompt: p.clone(),
            seed: cfg.sampling.seed + i as u64,
        })
        .collect();
    let mut out = Vec::new();
    for chunk in rows.chunks(batch) {
        let g = generate_batch(&a.model, &a.tokenizer, chunk, cfg, None, |_| Ok(())).unwrap();
        assert_eq!(g.rows.len(), chunk.len());
        out.extend(g.rows.into_iter().map(|r| (r.tokens, r.text)));
    }
    out
}

#[test]
fn batched_generation_matches_single_rows_for_every_batch_size() {
    let a = assistant();
    let prompts: Vec<Prompt> = questions(8)
        .iter()
        .map(|(s, q)| a.prompt(s, q).unwrap())
        .collect();
    let lens: Vec<usize> = prompts.iter().map(|p| p.embeds.dims()[1]).collect();
    assert!(
        lens.iter().any(|&l| l != lens[0]),
        "the prompts should differ in length so that padding is exercised: {lens:?}"
    );
    // Plain greedy and sampled decoding, then both with every penalty on (the penalties read
    // each row's own prompt ids and picks, whatever the batch).
    let penalized = SamplingConfig {
        repetition_penalty: 1.3,
        frequency_penalty: 0.4,
        presence_penalty: 0.2,
        ..Default::default()
    };
    let mut results = Vec::new();
    for sampling in [
        SamplingConfig::default(),
        SamplingConfig {
            temperature: 1.0,
            ..Default::default()
        },
        penalized,
        SamplingConfig {
            temperature: 1.0,
            ..penalized
        },
    ] {
        let temperature = sampling.temperature;
        let cfg = GenerationConfig {
            max_new_tokens: 10,
            sampling: SamplingConfig {
                seed: 3,
                ..sampling
            },
            stop_ids: a.stop_ids(),
            ..Default::default()
        };
        let one = tokens_by_batch(&a, &prompts, &cfg, 1);
        assert_eq!(
            one,
            tokens_by_batch(&a, &prompts, &cfg, 1),
            "{sampling:?}: not deterministic"
        );
        for batch in [3, 8] {
            assert_eq!(
                one,
                tokens_by_batch(&a, &prompts, &cfg, batch),
                "{sampling:?}: batch {batch} differs from batch 1"
            );
        }
        // The streaming single-sequence loop agrees with the batched one.
        for (i, p) in prompts.iter().enumerate().take(3) {
            let row_cfg = GenerationConfig {
                sampling: SamplingConfig {
                    seed: cfg.sampling.seed + i as u64,
                    ..cfg.sampling
                },
                ..cfg.clone()
            };
            let (mut streamed, mut text) = (Vec::new(), String::new());
            let g = generate(&a.model, &a.tokenizer, p, &row_cfg, |t| {
                streamed.push(t.id);
                text.push_str(t.text);
                Ok(())
            })
            .unwrap();
            assert_eq!(
                (&g.tokens, &g.text),
                (&one[i].0, &one[i].1),
                "{sampling:?}: row {i}"
            );
            assert!(g.tokens.starts_with(&streamed));
            assert!(g.text.starts_with(&text));
            let end =
                g.tokens.len() - usize::from(a.stop_ids().contains(&g.tokens[g.tokens.len() - 1]));
            assert_eq!(g.text, a.tokenizer.decode(&g.tokens[..end], true).unwrap());
        }
        if temperature > 0.0 {
            assert!(
                one.iter().any(|t| t != &one[0]),
                "sampled rows are all identical: {one:?}"
            );
        }
        results.push(one);
    }
    // The penalties change what is generated.
    assert_ne!(
        results[0], results[2],
        "greedy: the penalties changed nothing"
    );
    assert_ne!(
        results[1], results[3],
        "sampled: the penalties changed nothing"
    );
}

#[test]
fn prob_yes_is_the_softmax_of_the_first_answer_position() {
    let a = assistant();
    let yn = YesNoIds::from_tokenizer(&a.tokenizer).unwrap();
    assert!(!yn.yes.is_empty() && !yn.no.is_empty());
    let qs = questions(3);
    let prompts: Vec<RowPrompt> = qs
        .iter()
        .map(|(s, q)| RowPrompt {
            prompt: a.prompt(s, q).unwrap(),
            seed: 0,
        })
        .collect();
    let cfg = GenerationConfig {
        max_new_tokens: 1,
        sampling: SamplingConfig::default(),
        stop_ids: a.stop_ids(),
        ..Default::default()
    };
    let g = generate_batch(
        &a.model,
        &a.tokenizer,
        &prompts,
        &cfg,
        Some(&yn),
        |_| Ok(()),
    )
    .unwrap();
    for (row, p) in g.rows.iter().zip(&prompts) {
        let got = row.prob_yes.unwrap();
        assert!((0.0..=1.0).contains(&got));
        // Independently: full forward pass, softmax over the whole vocabulary at the last
        // prompt position, in f64.
        let logits = a
            .model
            .decoder()
            .forward(&p.prompt.embeds, None, false, 0)
            .unwrap();
        let s = logits.dims()[1];
        let last: Vec<f32> = logits
            .narrow(1, s - 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = last.iter().map(|&v| (v as f64 - max).exp()).sum();
        let p = |id: &u32| (last[*id as usize] as f64 - max).exp() / z;
        let py: f64 = yn.yes.iter().map(p).sum();
        let pn: f64 = yn.no.iter().map(p).sum();
        let want = py / (py + pn);
        assert!((got - want).abs() < 1e-5, "prob_yes {got}, softmax {want}");
    }
}

fn write(path: &Path, text: &str) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

#[test]
fn generate_input_writes_every_row_in_order_and_reports_bad_ones() {
    let dir = fixture();
    let test = std::fs::read_to_string(dir.join("bbbp/train.jsonl")).unwrap();
    let mut lines: Vec<String> = test.lines().take(5).map(String::from).collect();
    lines.insert(
        2,
        r#"{"id":"broken","smiles":"C1CC(","conversations":[{"from":"human","value":"<image>\nIs it?"},{"from":"gpt","value":"No"}]}"#
            .to_string(),
    );
    let input = dir.join("gen_in.jsonl");
    write(&input, &(lines.join("\n") + "\n"));
    let mut outs = Vec::new();
    for batch in ["1", "4"] {
        let output = dir.join(format!("gen_out_{batch}.jsonl"));
        let o = bin()
            .args(["generate", "--run"])
            .arg(run_dir())
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&output)
            .args(["--batch-size", batch, "--max-new-tokens", "6", "--prob-yes"])
            .output()
            .unwrap();
        common::check(&o);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("1 rows not answered") && err.contains("lines 3"),
            "{err}"
        );
        let rows: Vec<serde_json::Value> = std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 6);
        for (row, line) in rows.iter().zip(&lines) {
            let want: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(row["id"], want["id"]);
            assert_eq!(row["smiles"], want["smiles"]);
            assert_eq!(row["reference"], want["conversations"][1]["value"]);
            assert!(!row["prompt"].as_str().unwrap().contains("<image>"));
            assert!(row["prediction"].is_string());
        }
        assert_eq!(rows[2]["prediction"], "");
        assert!(rows[2]["error"]
            .as_str()
            .unwrap()
            .contains("invalid SMILES"));
        for (i, r) in rows.iter().enumerate() {
            if i != 2 {
                assert!(r.get("error").is_none(), "{r}");
                let p = r["prob_yes"].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&p));
            }
        }
        outs.push(rows);
    }
    // Sampling at the default temperature, seeded per input row: the batch size changes no
    // text; prob_yes agrees to float rounding.
    for (a, b) in outs[0].iter().zip(&outs[1]) {
        let strip = |v: &serde_json::Value| {
            let mut v = v.clone();
            v.as_object_mut().unwrap().remove("prob_yes");
            v
        };
        assert_eq!(strip(a), strip(b));
        let (pa, pb) = (a["prob_yes"].as_f64(), b["prob_yes"].as_f64());
        assert_eq!(pa.is_some(), pb.is_some());
        if let (Some(pa), Some(pb)) = (pa, pb) {
            assert!((pa - pb).abs() < 1e-6, "{pa} vs {pb}");
        }
    }

    // --limit answers the first rows only.
    let o = bin()
        .args(["generate", "--run"])
        .arg(run_dir())
        .arg("--input")
        .arg(&input)
        .args(["--limit", "2", "--max-new-tokens", "2"])
        .output()
        .unwrap();
    common::check(&o);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);

    // Bad JSON: the file and line are named, nothing is generated.
    let bad = dir.join("gen_bad.jsonl");
    write(&bad, &format!("{}\n\n{{\"id\": 1, oops\n", lines[0]));
    let o = bin()
        .args(["generate", "--run"])
        .arg(run_dir())
        .arg("--input")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("gen_bad.jsonl, line 3") && err.contains("bad JSON"),
        "{err}"
    );
}

#[test]
fn eval_run_generates_and_scores_bbbp() {
    let dir = fixture();
    let out = dir.join("eval_out");
    let o = bin()
        .args(["eval", "--task", "bbbp", "--run"])
        .arg(run_dir())
        .arg("--data")
        .arg(dir.join("bbbp/train.jsonl"))
        .arg("--out")
        .arg(&out)
        .args([
            "--limit",
            "10",
            "--batch-size",
            "4",
            "--max-new-tokens",
            "3",
        ])
        .output()
        .unwrap();
    common::check(&o);
    let preds = std::fs::read_to_string(out.join("predictions.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = preds
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r["prob_yes"].is_f64()));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics.to_string().contains("roc_auc_prob"), "{metrics}");
    assert!(out.join("report.md").is_file());

    // --predictions and --run together are refused.
    let o = bin()
        .args(["eval", "--task", "bbbp", "--predictions"])
        .arg(out.join("predictions.jsonl"))
        .arg("--run")
        .arg(run_dir())
        .arg("--data")
        .arg(dir.join("bbbp/train.jsonl"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    // The predictions it wrote score the same on their own.
    let o2 = bin()
        .args(["eval", "--task", "bbbp", "--predictions"])
        .arg(out.join("predictions.jsonl"))
        .output()
        .unwrap();
    common::check(&o2);
    let again: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(again, metrics);
}

fn chat(input: &str) -> std::process::Output {
    let mut child = bin()
        .args(["chat", "--json", "--run"])
        .arg(run_dir())
        .args([
            "--smiles",
            "CCO",
            "--max-new-tokens",
            "6",
            "--temperature",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn answers(o: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn chat_keeps_history_and_reset_starts_over() {
    let o = chat(
        "What is it?\nAnd its solubility?\nreset\nWhat is it?\nreset C1CC(\nreset c1ccccc1\nWhat is it?\nquit\nnever read\n",
    );
    common::check(&o);
    let a = answers(&o);
    assert_eq!(a.len(), 4, "{a:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid SMILES C1CC("), "{err}");
    assert!(err.contains("new conversation about c1ccccc1"), "{err}");
    let turns: Vec<u64> = a.iter().map(|v| v["turn"].as_u64().unwrap()).collect();
    assert_eq!(turns, [1, 2, 1, 1]);
    assert_eq!(a[1]["question"], "And its solubility?");
    assert_eq!(a[3]["smiles"], "c1ccccc1");
    // After `reset` the same first question about the same molecule gets the same (sampled,
    // seeded per turn) answer; the first turn is what `generate` answers with the same settings
    // (chat's repetition penalty is 1.1, --input's 1 unless asked).
    assert_eq!(a[0]["answer"], a[2]["answer"]);
    let input = fixture().join("chat_q.jsonl");
    write(
        &input,
        "{\"id\": \"q\", \"smiles\": \"CCO\", \"prompt\": \"What is it?\"}\n",
    );
    let o = bin()
        .args(["generate", "--run"])
        .arg(run_dir())
        .arg("--input")
        .arg(&input)
        .args(["--max-new-tokens", "6", "--temperature", "1"])
        .args(["--repetition-penalty", "1.1"])
        .output()
        .unwrap();
    common::check(&o);
    let row: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(row["prediction"], a[0]["answer"]);
    // End of input ends the chat too.
    let o = chat("What is it?\n");
    common::check(&o);
    assert_eq!(answers(&o).len(), 1);
}

#[test]
fn one_molecule_answers_with_the_assistant_penalty_files_without() {
    // At the default temperature (0.2), seeded.
    let answer = |extra: &[&str]| -> String {
        let o = bin()
            .args(["generate", "--run"])
            .arg(run_dir())
            .args(["--smiles", "CCO", "--max-new-tokens", "48"])
            .args(extra)
            .output()
            .unwrap();
        common::check(&o);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let default = answer(&[]);
    assert_eq!(default, answer(&["--repetition-penalty", "1.1"]));
    assert_ne!(default, answer(&["--repetition-penalty", "1"]));
    // A file of questions is answered as the reference decodes: no penalty by default.
    let input = fixture().join("penalty_q.jsonl");
    write(
        &input,
        "{\"id\": \"q\", \"smiles\": \"CCO\", \"prompt\": \"Describe this molecule.\"}\n",
    );
    let predict = |extra: &[&str]| -> serde_json::Value {
        let o = bin()
            .args(["generate", "--run"])
            .arg(run_dir())
            .arg("--input")
            .arg(&input)
            .args(["--max-new-tokens", "48"])
            .args(extra)
            .output()
            .unwrap();
        common::check(&o);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["prediction"].clone()
    };
    let plain = predict(&[]);
    assert_eq!(plain, predict(&["--repetition-penalty", "1"]));
    assert_ne!(plain, predict(&["--repetition-penalty", "1.1"]));
}

/// `instructmol serve` on the tiny run: (the child, its address).
fn serve() -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = bin()
        .args(["serve", "--port", "0", "--run"])
        .arg(run_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(a) = line.split("listening on http://").nth(1) {
            break a.trim().to_string();
        }
    };
    // Keep reading its log so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// POSTs `body` to the server's chat endpoint; the response's JSON.
fn chat_completion(addr: &str, body: &serde_json::Value) -> serde_json::Value {
    use std::io::Read;
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, mut rest) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{raw}");
    let mut json = String::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            json.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
    } else {
        json.push_str(rest);
    }
    serde_json::from_str(&json).unwrap()
}

#[test]
fn the_server_decodes_with_the_same_penalties_and_stop_strings_as_generate() {
    let generate = |extra: &[&str]| -> String {
        let o = bin()
            .args(["generate", "--run"])
            .arg(run_dir())
            .args([
                "--smiles",
                "CCO",
                "--prompt",
                "What is it?",
                "--temperature",
                "0",
            ])
            .args(["--max-new-tokens", "16", "--repetition-penalty", "3"])
            .args(["--frequency-penalty", "0.5", "--presence-penalty", "0.25"])
            .args(extra)
            .output()
            .unwrap();
        common::check(&o);
        let text = String::from_utf8(o.stdout).unwrap();
        text.strip_suffix('\n').unwrap().to_string()
    };
    let full = generate(&[]);
    let stop: String = full.chars().skip(4).take(2).collect();
    let cut = generate(&["--stop", &stop]);
    assert_eq!(cut, full[..full.find(&stop).unwrap()]);
    let (mut child, addr) = serve();
    let ask = |extra: serde_json::Value| {
        let mut body = serde_json::json!({
            "messages": [{"role": "user", "content": "What is it?"}],
            "molecule": "CCO", "temperature": 0, "max_tokens": 16,
            "repetition_penalty": 3, "frequency_penalty": 0.5, "presence_penalty": 0.25,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = chat_completion(&addr, &body);
        let choice = &r["choices"][0];
        (
            choice["message"]["content"].as_str().unwrap().to_string(),
            choice["finish_reason"].as_str().unwrap().to_string(),
        )
    };
    let served = ask(serde_json::json!({}));
    let served_cut = ask(serde_json::json!({"stop": [stop]}));
    let plain = ask(
        serde_json::json!({"repetition_penalty": 1, "frequency_penalty": 0, "presence_penalty": 0}),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(served.0, full);
    assert_eq!(served_cut, (cut, "stop".to_string()));
    assert_ne!(plain.0, full, "the server ignored the penalties");
}
