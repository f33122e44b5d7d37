//! Tests that run as several MPI processes: a parent `#[test]` starts `mpirun -np N` on its own
//! test binary, whose ranks each run an `#[ignore]`d test (the rank body) and check their own
//! results. The body returns early unless [`in_rank`], so a plain `--ignored` run does nothing.
//!
//! `mpirun` comes with Open MPI (`scripts/setup.sh` installs it); without it the parent test
//! fails and says so.

use std::process::Command;

/// Set in the environment of the ranks, so a rank body runs only under its parent.
const RANK_ENV: &str = "NNC_MPI_RANK_BODY";

/// Whether this process is a rank started by [`mpirun`].
pub fn in_rank() -> bool {
    std::env::var_os(RANK_ENV).is_some()
}

/// Runs the ignored test `body` of the current test binary on `ranks` MPI processes (more
/// processes than cores if need be) with `env` added to their environment; panics with their
/// output unless every rank passes. Returns the ranks' output.
pub fn mpirun(body: &str, ranks: usize, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("mpirun")
        .args(["-np", &ranks.to_string(), "--oversubscribe"])
        .arg(exe)
        .args(["--exact", body, "--ignored", "--nocapture", "--test-threads=1"])
        .env(RANK_ENV, "1")
        // Containers and CI run as root, which Open MPI refuses unless told.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot start mpirun ({e}): install Open MPI with scripts/setup.sh"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mpirun -np {ranks} {body} failed:\n{text}");
    let passed = text.matches("test result: ok. 1 passed").count();
    assert_eq!(passed, ranks, "every rank must run the body once:\n{text}");
    text
}
