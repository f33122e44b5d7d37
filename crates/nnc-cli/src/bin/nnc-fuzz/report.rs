//! The figures of a fuzz run: per input kind, how many cases ended how, and the peak memory
//! of their processes.

use crate::cases::Kind;
use crate::child::Outcome;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Tallies per kind.
#[derive(Debug, Default)]
pub struct Report {
    kinds: BTreeMap<Kind, Tally>,
    pub seconds: f64,
}

#[derive(Debug, Default)]
struct Tally {
    /// Count per outcome name, in `OUTCOMES` order.
    outcomes: [u64; 5],
    /// Peak resident memory of each case (its largest command), KiB.
    peaks: Vec<u64>,
}

const OUTCOMES: [&str; 5] = ["ok", "clean error", "over memory", "timeout", "crash"];

fn slot(outcome: &Outcome) -> usize {
    OUTCOMES.iter().position(|&n| n == outcome.name()).unwrap_or(4)
}

impl Report {
    pub fn add(&mut self, kind: Kind, outcome: &Outcome, peak_kib: u64) {
        let t = self.kinds.entry(kind).or_default();
        t.outcomes[slot(outcome)] += 1;
        t.peaks.push(peak_kib);
    }

    pub fn cases(&self) -> u64 {
        self.kinds.values().map(|t| t.outcomes.iter().sum::<u64>()).sum()
    }

    /// Crashes and timeouts.
    pub fn failures(&self) -> u64 {
        self.kinds.values().map(|t| t.outcomes[3] + t.outcomes[4]).sum()
    }

    /// A Markdown table: one row per kind and a total.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| input kind | cases | ok | clean error | over memory | timeout | crash | peak memory per case (median / max) |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        let mut total = Tally::default();
        for (kind, t) in &self.kinds {
            row(&mut s, kind.name(), t);
            for (a, b) in total.outcomes.iter_mut().zip(t.outcomes) {
                *a += b;
            }
            total.peaks.extend(&t.peaks);
        }
        row(&mut s, "all", &total);
        s
    }

    /// The figures as JSON.
    pub fn json(&self) -> serde_json::Value {
        let kinds: serde_json::Map<String, serde_json::Value> = self
            .kinds
            .iter()
            .map(|(k, t)| {
                let outcomes: serde_json::Map<String, serde_json::Value> =
                    OUTCOMES.iter().zip(t.outcomes).map(|(n, c)| (n.to_string(), c.into())).collect();
                let (median, max) = peaks(&t.peaks);
                (
                    k.name().to_string(),
                    serde_json::json!({"outcomes": outcomes, "peak_kib_median": median, "peak_kib_max": max}),
                )
            })
            .collect();
        serde_json::json!({"cases": self.cases(), "failures": self.failures(), "seconds": self.seconds, "kinds": kinds})
    }
}

fn peaks(p: &[u64]) -> (u64, u64) {
    let mut sorted = p.to_vec();
    sorted.sort_unstable();
    (sorted.get(sorted.len() / 2).copied().unwrap_or(0), sorted.last().copied().unwrap_or(0))
}

fn row(s: &mut String, name: &str, t: &Tally) {
    let (median, max) = peaks(&t.peaks);
    let count: u64 = t.outcomes.iter().sum();
    let o = t.outcomes;
    let _ = writeln!(
        s,
        "| {name} | {count} | {} | {} | {} | {} | {} | {:.0} / {:.0} MiB |",
        o[0],
        o[1],
        o[2],
        o[3],
        o[4],
        median as f64 / 1024.0,
        max as f64 / 1024.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_add_up() {
        let mut r = Report::default();
        r.add(Kind::Onnx, &Outcome::Ok, 1024);
        r.add(Kind::Onnx, &Outcome::CleanError, 3072);
        r.add(Kind::Bundle, &Outcome::Crash("x".into()), 2048);
        assert_eq!((r.cases(), r.failures()), (3, 1));
        let table = r.table();
        assert!(table.contains("| onnx | 2 | 1 | 1 | 0 | 0 | 0 | 3 / 3 MiB |"), "{table}");
        assert!(table.contains("| all | 3 | 1 | 1 | 0 | 0 | 1 |"), "{table}");
        assert_eq!(r.json()["kinds"]["bundle"]["outcomes"]["crash"], 1);
    }
}
