//! `.nnir` text mutated token by token: numbers (dimensions, attribute values, constants)
//! replaced by interesting ones, dtypes and op names swapped, lines deleted, duplicated and
//! swapped, so the result still mostly parses and reaches the verifier and the compiler.

use super::interesting;

const DTYPES: [&str; 13] = ["f32", "f64", "f16", "bf16", "i64", "i32", "i16", "i8", "u64", "u32", "u16", "u8", "bool"];

const OPS: [&str; 24] = [
    "add",
    "mul",
    "matmul",
    "conv",
    "reshape",
    "transpose",
    "gather",
    "concat",
    "slice",
    "expand",
    "pad",
    "relu",
    "exp",
    "reduce_sum",
    "softmax",
    "cast",
    "select",
    "iota",
    "topk",
    "cumsum",
    "scatter",
    "resize",
    "lstm",
    "div",
];

/// Applies one to three mutations to `text`.
pub fn mutate(rng: &mut fastrand::Rng, text: &str) -> (String, Vec<String>) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut done = Vec::new();
    for _ in 0..rng.usize(1..=3) {
        if lines.is_empty() {
            lines.push("graph g() {".into());
        }
        let i = rng.usize(..lines.len());
        done.push(match rng.u8(..8) {
            0..=2 => replace_token(
                rng,
                &mut lines[i],
                |t| t.chars().all(|c| c.is_ascii_digit()),
                |rng| interesting(rng).to_string(),
            )
            .map_or_else(|| "no number on the line".into(), |(a, b)| format!("line {}: {a} -> {b}", i + 1)),
            3 => replace_token(
                rng,
                &mut lines[i],
                |t| DTYPES.contains(&t),
                |rng| DTYPES[rng.usize(..DTYPES.len())].into(),
            )
            .map_or_else(|| "no dtype on the line".into(), |(a, b)| format!("line {}: {a} -> {b}", i + 1)),
            4 => replace_token(rng, &mut lines[i], |t| OPS.contains(&t), |rng| OPS[rng.usize(..OPS.len())].into())
                .map_or_else(|| "no op on the line".into(), |(a, b)| format!("line {}: {a} -> {b}", i + 1)),
            5 => {
                lines.remove(i);
                format!("deleted line {}", i + 1)
            }
            6 => {
                let line = lines[i].clone();
                lines.insert(i, line);
                format!("duplicated line {}", i + 1)
            }
            _ => {
                let j = rng.usize(..lines.len());
                lines.swap(i, j);
                format!("swapped lines {} and {}", i + 1, j + 1)
            }
        });
    }
    let mut out = lines.join("\n");
    out.push('\n');
    (out, done)
}

/// Replaces one token of `line` that satisfies `is` by `with(rng)`; returns the old and new.
fn replace_token(
    rng: &mut fastrand::Rng,
    line: &mut String,
    is: impl Fn(&str) -> bool,
    with: impl Fn(&mut fastrand::Rng) -> String,
) -> Option<(String, String)> {
    let bytes = line.as_bytes();
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, &b) in bytes.iter().chain(std::iter::once(&b' ')).enumerate() {
        let word = b.is_ascii_alphanumeric() || b == b'_';
        match (start, word) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                if is(&line[s..i]) {
                    tokens.push((s, i));
                }
                start = None;
            }
            _ => {}
        }
    }
    if tokens.is_empty() {
        return None;
    }
    let (s, e) = tokens[rng.usize(..tokens.len())];
    let old = line[s..e].to_string();
    let new = with(rng);
    line.replace_range(s..e, &new);
    Some((old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_replaced_whole() {
        let mut line = "  %y: f32[2, 30] = relu(%x)".to_string();
        let mut rng = fastrand::Rng::with_seed(1);
        let (old, _) = replace_token(&mut rng, &mut line, |t| t == "30", |_| "7".into()).unwrap();
        assert_eq!((old.as_str(), line.as_str()), ("30", "  %y: f32[2, 7] = relu(%x)"));
        assert!(replace_token(&mut rng, &mut line, |t| t == "f64", |_| "x".into()).is_none());
        let (text, what) = mutate(&mut rng, "graph g(%x: f32[2]) {\n  %y: f32[2] = relu(%x)\n  return %y\n}\n");
        assert!(!what.is_empty() && text.ends_with('\n'));
    }
}
