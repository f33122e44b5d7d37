//! `--tuning FILE` and `--no-tuning`: which tuned schedules `compile`, `run` and `bench` use
//! (the user's tuning cache by default), and the one line that says how many kernels came
//! from them.

use clap::Args;
use nnc_runtime::tuning::TuningUse;
use nnc_runtime::{SessionOptions, Target, TuningSource};
use std::path::PathBuf;

#[derive(Args, Debug, Clone, Default)]
pub struct TuningArgs {
    /// Use the tuned schedules in FILE (records written by `nnc tune -o FILE`) instead of the
    /// user's tuning cache (`NNC_TUNING_CACHE`, else ~/.cache/nnc/tuning.jsonl).
    #[arg(long, value_name = "FILE", conflicts_with = "no_tuning")]
    pub tuning: Option<PathBuf>,

    /// Give every kernel its default schedule, ignoring tuned records.
    #[arg(long)]
    pub no_tuning: bool,
}

impl TuningArgs {
    pub fn source(&self) -> TuningSource {
        match (&self.tuning, self.no_tuning) {
            (_, true) => TuningSource::Off,
            (Some(file), false) => TuningSource::File(file.clone()),
            (None, false) => TuningSource::UserCache,
        }
    }

    /// A record file named with `--tuning` must exist (the user cache may not, yet).
    pub fn check(&self) -> anyhow::Result<()> {
        match &self.tuning {
            Some(file) if !file.is_file() => anyhow::bail!("--tuning {}: no such file", file.display()),
            _ => Ok(()),
        }
    }

    /// The options of a session on `target` with these tuning flags (checked).
    pub fn session_options(
        &self,
        target: Target,
        adapter: Option<String>,
        threads: Option<usize>,
    ) -> anyhow::Result<SessionOptions> {
        self.check()?;
        Ok(SessionOptions { target, adapter, threads, optimize: true, tuning: self.source() })
    }
}

/// Prints to stderr what was wrong with skipped records, and how many of `kernels` kernels had
/// tuned schedules (nothing when none did and nothing was wrong).
pub fn report(usage: &TuningUse, kernels: usize) {
    for w in &usage.warnings {
        eprintln!("warning: {w}");
    }
    let tuned = usage.tuned_kernels();
    if tuned > 0 {
        eprintln!("note: {tuned} of {kernels} kernels scheduled from tuned records");
    }
}
