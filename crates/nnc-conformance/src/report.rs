//! Summaries of a conformance run: per-op lines for the terminal and `SUPPORTED_OPS.md`.

use crate::suite::{CaseOutcome, CaseResult};
use std::collections::{BTreeMap, HashMap};

/// The results of one run, grouped by the ONNX op each case tests.
pub struct Report {
    pub backend: String,
    pub results: Vec<CaseResult>,
}

/// Cases of one op.
#[derive(Default)]
pub struct OpSummary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Failure and skip reasons with the cases they hit, most frequent first.
    pub reasons: Vec<(String, Vec<String>)>,
}

impl Report {
    pub fn totals(&self) -> (usize, usize, usize) {
        let count = |f: fn(&CaseOutcome) -> bool| self.results.iter().filter(|r| f(&r.outcome)).count();
        (
            count(|o| matches!(o, CaseOutcome::Pass)),
            count(|o| matches!(o, CaseOutcome::Fail(_))),
            count(|o| matches!(o, CaseOutcome::Skip(_))),
        )
    }

    /// The op a case tests: the op of a one-node model; an `_expanded` case belongs to the op
    /// of the case it expands; otherwise the first node's op.
    fn op_of_cases(&self) -> Vec<String> {
        let main_op = |r: &CaseResult| -> Option<String> {
            let ops: Vec<&String> = r.node_ops.iter().filter(|o| *o != "Constant").collect();
            match ops.as_slice() {
                [one] => Some((*one).clone()),
                _ => None,
            }
        };
        let by_name: HashMap<&str, String> =
            self.results.iter().filter_map(|r| main_op(r).map(|op| (r.name.as_str(), op))).collect();
        self.results
            .iter()
            .map(|r| {
                if let Some(pos) = r.name.find("_expanded") {
                    if let Some(op) = by_name.get(&r.name[..pos]) {
                        return op.clone();
                    }
                }
                main_op(r).or_else(|| r.node_ops.first().cloned()).unwrap_or_else(|| "(unreadable model)".into())
            })
            .collect()
    }

    pub fn by_op(&self) -> BTreeMap<String, OpSummary> {
        let mut out: BTreeMap<String, OpSummary> = BTreeMap::new();
        let mut reasons: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (r, op) in self.results.iter().zip(self.op_of_cases()) {
            let s = out.entry(op.clone()).or_default();
            let reason = match &r.outcome {
                CaseOutcome::Pass => {
                    s.passed += 1;
                    continue;
                }
                CaseOutcome::Fail(why) => {
                    s.failed += 1;
                    why
                }
                CaseOutcome::Skip(why) => {
                    s.skipped += 1;
                    why
                }
            };
            reasons.entry(op).or_default().entry(generalize(reason)).or_default().push(r.name.clone());
        }
        for (op, rs) in reasons {
            let mut list: Vec<(String, Vec<String>)> = rs.into_iter().collect();
            list.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
            if let Some(s) = out.get_mut(&op) {
                s.reasons = list;
            }
        }
        out
    }

    /// One line per op, then `N passed, N failed, N skipped`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (op, o) in self.by_op() {
            let total = o.passed + o.failed + o.skipped;
            s.push_str(&format!("{op:<28} {:>3}/{:<3}", o.passed, total));
            if let Some((why, _)) = o.reasons.first() {
                s.push_str(&format!("  {}", truncate(why, 100)));
            }
            s.push('\n');
        }
        let (p, f, k) = self.totals();
        s.push_str(&format!("{p} passed, {f} failed, {k} skipped\n"));
        s
    }

    /// `SUPPORTED_OPS.md`: per op, cases passed/total and what is missing.
    pub fn markdown(&self, title_note: &str) -> String {
        let (p, f, k) = self.totals();
        let mut s = format!(
            "# Supported ONNX ops\n\n{title_note}\n\nBackend `{}`: **{p} passed, {f} failed, {k} skipped** of {} cases.\n\n",
            self.backend,
            self.results.len()
        );
        s.push_str("| op | passed / total | what is missing (cases) |\n|---|---|---|\n");
        for (op, o) in self.by_op() {
            let total = o.passed + o.failed + o.skipped;
            let missing: Vec<String> = o
                .reasons
                .iter()
                .map(|(why, cases)| format!("{} ({})", escape(&truncate(why, 160)), cases.len()))
                .collect();
            s.push_str(&format!("| {op} | {}/{total} | {} |\n", o.passed, missing.join("<br>")));
        }
        s
    }
}

/// Merges reasons that differ only in node numbers (`#12`) and data-set file numbers, so the
/// report groups them.
fn generalize(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut chars = reason.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        let numbered = c == '#' || out.ends_with("test_data_set_") || out.ends_with("put_");
        if numbered && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('N');
        }
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
