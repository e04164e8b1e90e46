//! The line tools (`featurize`, `convert`, `similarity`) under hostile conditions: bytes that
//! are not UTF-8, the output naming the input, a full disk, a reader that goes away, a run
//! killed half way. Nothing may be lost, hang or panic.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs the binary with `args`, `stdin` as standard input.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = common::bin();
    cmd.args(args);
    common::run_with_stdin(cmd, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    text(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect()
}

/// Files in `dir`, by name, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// 5000 lines, one of which (line 3001) carries the byte 0xFF after `CC`.
fn input_with_bad_byte(line: &[u8]) -> Vec<u8> {
    let mut input = Vec::new();
    for i in 1..=5000 {
        if i == 3001 {
            input.extend_from_slice(b"CC\xffO");
        } else {
            input.extend_from_slice(line);
        }
        input.push(b'\n');
    }
    input
}

#[test]
fn a_line_that_is_not_utf8_gets_an_error_line_and_the_run_goes_on() {
    let cases: [(&[&str], &[u8], &str); 3] = [
        (&["featurize"], b"CCO", "smiles"),
        (&["convert", "--to", "canonical"], b"OCC", "input"),
        (&["similarity"], b"CCO\tCCN", "a"),
    ];
    for (args, line, field) in cases {
        let dir = common::temp_dir(&format!("utf8-{}", args[0]));
        let input = dir.join("in.smi");
        let output = dir.join("out.jsonl");
        fs::write(&input, input_with_bad_byte(line)).expect("write input");
        fs::write(&output, "old content\n").expect("write old output");
        let mut all = args.to_vec();
        all.extend(["--threads", "2", "--input"]);
        let (i, o) = (
            input.to_str().expect("utf8"),
            output.to_str().expect("utf8"),
        );
        all.extend([i, "--output", o]);
        let out = run(&all, b"");
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        let lines = json_lines(&fs::read(&output).expect("output"));
        assert_eq!(lines.len(), 5000, "{args:?}");
        let bad = &lines[3000];
        let error = bad["error"].as_str().expect("error line");
        // Line 3001 starts at byte 3000 * (len + 1); the bad byte is its third.
        let offset = 3000 * (line.len() + 1) + 2;
        assert!(
            error.contains("line 3001")
                && error.contains("0xFF")
                && error.contains("byte offset 2 of the line")
                && error.contains(&format!("byte {offset} of the input")),
            "{error}"
        );
        assert_eq!(bad[field], "CC\u{FFFD}O");
        assert!(lines[3001]["error"].is_null(), "the run went on");
        assert!(
            stderr.contains("4999") && stderr.contains("1 invalid"),
            "{stderr}"
        );
        assert_eq!(listing(&dir), ["in.smi", "out.jsonl"], "no temporary left");
    }
}

#[test]
fn a_bad_byte_in_an_ignored_name_column_does_not_matter() {
    let out = run(&["featurize"], b"CCO caf\xe9\nC\xe9 name\n");
    assert!(out.status.success());
    let lines = json_lines(&out.stdout);
    assert_eq!(lines[0]["smiles"], "CCO");
    assert!(lines[0]["node_feat"].is_array());
    assert!(lines[1]["error"]
        .as_str()
        .is_some_and(|e| e.contains("line 2") && e.contains("0xE9")));
}

#[test]
fn input_and_output_the_same_file_is_refused_and_the_file_kept() {
    let dir = common::temp_dir("same-file");
    let data = "CCO\nc1ccccc1\n";
    let file = dir.join("mols.smi");
    fs::write(&file, data).expect("write");
    let link = dir.join("link.smi");
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    let hard = dir.join("hard.smi");
    fs::hard_link(&file, &hard).expect("hard link");
    let f = file.to_str().expect("utf8");
    let l = link.to_str().expect("utf8");
    let h = hard.to_str().expect("utf8");
    for args in [
        vec!["featurize", "-i", f, "-o", f],
        vec!["convert", "--to", "selfies", "-i", l, "-o", f],
        vec!["similarity", "-i", f, "-o", h],
    ] {
        let out = run(&args, b"");
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("are the same file") && stderr.contains("Write to another file"),
            "{stderr}"
        );
        assert_eq!(fs::read_to_string(&file).expect("read"), data, "{args:?}");
    }
    // Standard input read from the output file (`-o F < F`).
    let out = common::bin()
        .args(["featurize", "-o", f])
        .stdin(fs::File::open(&file).expect("open"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("standard input"));
    assert_eq!(fs::read_to_string(&file).expect("read"), data);
    // Standard output appended to the input file (`-i F >> F`), which would never end.
    let append = fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .expect("open");
    let out = common::bin()
        .args(["featurize", "-i", f])
        .stdout(append)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("standard output"));
    assert_eq!(fs::read_to_string(&file).expect("read"), data);
    assert_eq!(listing(&dir), ["hard.smi", "link.smi", "mols.smi"]);
}

#[test]
fn a_failed_run_leaves_an_existing_output_untouched() {
    let dir = common::temp_dir("failed-run");
    let output = dir.join("out.jsonl");
    fs::write(&output, "precious\n").expect("write");
    // A directory opens but cannot be read: the run fails after the output was prepared.
    let args = [
        "featurize",
        "-i",
        dir.to_str().expect("utf8"),
        "-o",
        output.to_str().expect("utf8"),
    ];
    let out = run(&args, b"");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read line 1"));
    assert_eq!(fs::read_to_string(&output).expect("read"), "precious\n");
    assert_eq!(listing(&dir), ["out.jsonl"]);
}

#[test]
fn a_killed_run_never_leaves_a_half_written_output() {
    let dir = common::temp_dir("killed-run");
    let output = dir.join("out.jsonl");
    fs::write(&output, "precious\n").expect("write");
    let mut child = common::bin()
        .args(["featurize", "--threads", "1", "-o"])
        .arg(&output)
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut stdin = child.stdin.take().expect("stdin");
    // Several chunks of lines, more than the output buffer holds; stdin stays open.
    for _ in 0..10_000 {
        stdin.write_all(b"c1ccccc1O\n").expect("write stdin");
    }
    stdin.flush().expect("flush");
    // Wait until output has reached the disk somewhere in the directory (a temporary file
    // here; the old code wrote the final file directly, after truncating it).
    let written = |p: &PathBuf| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut spins = 0;
    loop {
        let on_disk: u64 = fs::read_dir(&dir)
            .expect("read dir")
            .map(|e| written(&e.expect("entry").path()))
            .sum();
        if on_disk > 100_000 || fs::read_to_string(&output).ok().as_deref() != Some("precious\n") {
            break;
        }
        spins += 1;
        assert!(spins < 6000, "the binary wrote nothing");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    drop(stdin);
    assert_eq!(fs::read_to_string(&output).expect("read"), "precious\n");
}

#[test]
fn a_replaced_output_keeps_its_permissions_and_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::temp_dir("replace");
    let real = dir.join("real.jsonl");
    fs::write(&real, "old\n").expect("write");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).expect("chmod");
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let out = run(&["featurize", "-o", link.to_str().expect("utf8")], b"CCO\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    let lines = json_lines(&fs::read(&real).expect("read"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["smiles"], "CCO");
    let mode = fs::metadata(&real).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(listing(&dir), ["link.jsonl", "real.jsonl"]);
}

#[test]
fn a_full_disk_is_an_error_naming_the_file() {
    if !Path::new("/dev/full").exists() {
        println!("skipped: no /dev/full");
        return;
    }
    let out = run(&["featurize", "-o", "/dev/full"], b"CCO\n");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot write output file /dev/full") && stderr.contains("No space"),
        "{stderr}"
    );
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_with_success() {
    for args in [
        &["featurize"][..],
        &["convert", "--to", "canonical"][..],
        &["similarity"][..],
    ] {
        let line: &[u8] = if args[0] == "similarity" {
            b"c1ccccc1O\tCCO\n"
        } else {
            b"c1ccccc1O\n"
        };
        let mut child = common::bin()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            for _ in 0..20_000 {
                if stdin.write_all(line).is_err() {
                    break;
                }
            }
        });
        // `| head -1`: read one line, then close the pipe.
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        reader.read_line(&mut first).expect("first line");
        assert!(first.starts_with('{'));
        drop(reader);
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("stderr");
        let status = child.wait().expect("wait");
        writer.join().expect("writer");
        assert!(status.success(), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

#[test]
fn stdout_and_stdin_still_stream() {
    let out = Command::new(env!("CARGO_BIN_EXE_instructmol"))
        .args(["convert", "--to", "canonical", "-i", "-", "-o", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(b"OCC\n")?;
            c.wait_with_output()
        })
        .expect("runs");
    assert!(out.status.success());
    assert_eq!(json_lines(&out.stdout)[0]["output"], "CCO");
}
