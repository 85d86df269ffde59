//! The bench programs still run: a short bench-token run signs on both sides, verifies the
//! signatures it kept, and prints its table; bad options are refused with a message. The
//! figures themselves are not checked here — a debug build on a shared machine says nothing
//! about speed (the benches are run by hand, in release, on a quiet machine).

use std::process::Command;

use anyhow::{Result, ensure};
use segel_tests::run::{run, run_output};
use segel_tests::segel::built;

fn bench_token() -> Result<Command> {
    Ok(Command::new(built()?.join("bench-token")))
}

#[test]
fn bench_token_measures_both_sides_and_prints_every_row() -> Result<()> {
    let out = run(
        bench_token()?.args(["--rounds", "1", "--seconds", "0.05", "--wave", "4"]),
        &[],
    )?;
    for row in [
        "P-256 ECDSA        1",
        "P-256 ECDSA        2",
        "RSA-2048 PKCS#1    1",
    ] {
        ensure!(out.contains(row), "no {row:?} row in:\n{out}");
    }
    ensure!(
        out.contains("client Waves(4)") && out.contains("worst median throughput ratio"),
        "{out}"
    );
    Ok(())
}

#[test]
fn bench_token_with_one_thread_and_the_each_client_measures_one_row() -> Result<()> {
    let out = run(
        bench_token()?.args([
            "--rounds",
            "1",
            "--seconds",
            "0.05",
            "--only",
            "p256",
            "--threads",
            "1",
            "--client",
            "each",
        ]),
        &[],
    )?;
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("P-256")).collect();
    ensure!(
        rows.len() == 1 && rows[0].contains("ECDSA        1"),
        "{out}"
    );
    ensure!(!out.contains("RSA-2048"), "{out}");
    Ok(())
}

#[test]
fn bench_token_refuses_bad_options_with_a_message() -> Result<()> {
    for (args, message) in [
        (&["--threads", "0"][..], "--threads must be above zero"),
        (&["--rounds", "0"][..], "must be above zero"),
        (&["--client", "sometimes"][..], "--client is waves or each"),
        (&["--wave", "many"][..], "--wave takes a number"),
        (&["--wave", "0"][..], "--wave must be above zero"),
    ] {
        let out = run_output(bench_token()?.args(args), &[])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && stderr.contains(message),
            "{args:?}: {stderr}"
        );
    }
    Ok(())
}
