//! `instructmol device` through the real binary: device and dtype flags, the CPU check, and the
//! errors a user sees for a device this build or machine cannot give.

use std::process::Command;

fn run(args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_instructmol"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        String::from_utf8(out.stdout).expect("utf8 stdout"),
        String::from_utf8(out.stderr).expect("utf8 stderr"),
        out.status.success(),
    )
}

fn report(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

#[test]
fn cpu_f32_matches_the_reference_exactly() {
    let (out, err, ok) = run(&["device", "--device", "cpu", "--dtype", "f32"]);
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(r["device"], "cpu");
    assert_eq!(r["dtype"], "f32");
    assert_eq!(r["ok"], true);
    // Same device, same dtype, same code: bit-identical.
    assert_eq!(r["max_rel_diff"].as_f64(), Some(0.0));
}

#[test]
fn cpu_half_precisions_differ_from_f32_within_tolerance() {
    for dtype in ["bf16", "f16"] {
        let (out, err, ok) = run(&["device", "--device", "cpu", "--dtype", dtype]);
        assert!(ok, "{dtype}: {err}");
        let r = report(&out);
        assert_eq!(r["dtype"], dtype);
        let diff = r["max_rel_diff"].as_f64().expect("a number");
        let tol = r["tolerance"].as_f64().expect("a number");
        // Rounding to 8 or 11 significant bits must show, and stay inside the tolerance.
        assert!(diff > 0.0 && diff <= tol, "{dtype}: {diff} vs {tol}");
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_in_a_cpu_build_says_how_to_get_one() {
    let (out, err, ok) = run(&["device", "--device", "cuda:0"]);
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("built without the `cuda` feature"), "{err}");
    assert!(err.contains("scripts/build-cuda.sh"), "{err}");
}

#[test]
fn bad_device_and_dtype_are_rejected_with_the_choices() {
    let (_, err, ok) = run(&["device", "--device", "gpu0"]);
    assert!(!ok);
    assert!(err.contains("`gpu0`") && err.contains("cuda:N"), "{err}");
    let (_, err, ok) = run(&["device", "--device", "cpu", "--dtype", "f64"]);
    assert!(!ok);
    assert!(err.contains("`f64`") && err.contains("bf16"), "{err}");
}

#[test]
fn model_check_on_the_cpu_is_exact_in_f32_and_within_tolerance_in_bf16() {
    // f32 on the CPU runs the reference's own computation: bit-identical loss and gradients.
    let (out, err, ok) = run(&[
        "device", "--device", "cpu", "--dtype", "f32", "--preset", "tiny",
    ]);
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(r["check"], "model");
    assert_eq!(r["preset"], "tiny");
    assert_eq!(r["ok"], true);
    assert_eq!(r["loss_rel_diff"].as_f64(), Some(0.0));
    assert_eq!(r["grad_max_rel_diff"].as_f64(), Some(0.0));
    // Every adapted module of both blocks: A and B.
    assert_eq!(r["lora_tensors"].as_u64(), Some(2 * 7 * 2));
    let loss = r["loss_cpu_f32"].as_f64().expect("a number");
    // Random weights predict about uniformly over the 512 ids: ln 512 = 6.24.
    assert!((loss - 512f64.ln()).abs() < 0.1, "{loss}");

    // bf16: the rounding shows, and stays inside the stated tolerances.
    let (out, err, ok) = run(&[
        "device", "--device", "cpu", "--dtype", "bf16", "--preset", "tiny",
    ]);
    assert!(ok, "{err}");
    let r = report(&out);
    assert_eq!(r["dtype"], "bf16");
    let num = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    println!("bf16 on the CPU: {r}");
    assert!(
        num("loss_rel_diff") > 0.0 && num("loss_rel_diff") <= num("loss_tolerance"),
        "{r}"
    );
    assert!(
        num("grad_max_rel_diff") > 0.0 && num("grad_max_rel_diff") <= num("grad_tolerance"),
        "{r}"
    );
    assert!(num("grad_max_rel_l2") > 0.0, "{r}");
}

#[test]
fn model_check_refuses_bad_sizes() {
    let (out, err, ok) = run(&[
        "device", "--device", "cpu", "--preset", "tiny", "--seq", "1",
    ]);
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("--seq at least 2"), "{err}");
}
