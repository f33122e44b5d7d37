//! Fuzz-style robustness test of the `.nnir` parser: thousands of mutated copies of valid texts
//! (byte flips, deletions, duplications, truncations, splices, swapped tokens, inserted tricky
//! tokens) must each parse to `Ok` or `Err`, never panic. When one parses, printing it must
//! round-trip too. Deterministic (seeded xorshift), so a failure reproduces.

use nnc_ir::text::{parse, print};
use std::panic::{catch_unwind, AssertUnwindSafe};

const MUTANTS_PER_SEED: usize = 1500;

/// Valid texts covering every part of the grammar.
const SEEDS: &[&str] = &[
    r#"# a comment runs to end of line
graph mlp(%x: f32[batch, 2], %"onnx/name:0": i64[]) {
  %w: f32[2, 2] = constant [1.0, 2.5, -3.0, 4.0]
  %h: f32[batch, 2] = matmul(%x, %w)
  %r: f32[batch, 2] = softmax(%h) {axis = 1}
  %s: f32[batch, 2] = slice(%r) {axes = [0], starts = [0], ends = [9223372036854775807], steps = [1]}
  return %r, %h
}
"#,
    r#"graph "conv net"(%img: f32[1, 2, 6, 6]) {
  %k: f32[2, 1, 3, 3] = constant [1.0, -0.0, inf, -inf, nan, 1e-45, 3.4028235e38, 0.1, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
  %c: f32[1, 2, 6, 6] = conv(%img, %k) {strides = [1, 1], dilations = [1, 1], pads = [1, 1, 1, 1], groups = 2}
  %p: f32[1, 2, 3, 3] = max_pool(%c) {kernel = [2, 2], strides = [2, 2], dilations = [1, 1], pads = [0, 0, 0, 0], ceil_mode = false, count_include_pad = false}
  %q: f32[1, 2, 5, 3] = pad(%p) {pads = [0, 0, 1, 0, 0, 0, 1, 0], mode = reflect, value = 0.0}
  %g = gelu(%q) {approximate = tanh}
  %flat: f32[30] = reshape(%g) {shape = [30]}
  %i: i64[2] = constant [-1, 9223372036854775807]
  %sel: f32[2] = gather(%flat, %i) {axis = 0}
  %t: f32[30] = scatter_add(%flat, %i, %sel) {axis = 0}
  return %t, %sel
}
"#,
    r#"graph attn.block(%q: f16[b, 4, s, 8], %m: f16[]) {
  %a: f16[b, 4, s, 8] = attention(%q, %q, %q, %m) {scale = 0.125, causal = true}
  %sc: f16[8] = constant [0.5, 1.0, 1.5, 2.0, -0.099975586, 65504.0, 6e-8, 0.0]
  %n: f16[b, 4, s, 8] = layer_norm(%a, %sc, %sc) {axis = 3, epsilon = 1e-5}
  %r: f16[4*b*s, 8] = reshape(%n) {shape = [4*b*s, 8]}
  %io: i64[s, 2*s + 1] = iota() {dtype = i64, shape = [s, 2*s + 1], axis = 1}
  %cat: f16[4*b*s, 16] = concat(%r, %r) {axis = 1}
  %lt: bool[4*b*s, 16] = lt(%cat, %cat)
  %z: f16[4*b*s, 16] = select(%lt, %cat, %cat)
  %e: f16[2, 4*b*s, 16] = expand(%z) {shape = [2, 4*b*s, 16]}
  %tr: f16[16, 4*b*s, 2] = transpose(%e) {perm = [2, 1, 0]}
  %sum: f16[16, 1, 2] = reduce_sum(%tr) {axes = [1], keep_dims = true}
  %am: i64[16, 2] = argmax(%sum) {axis = 1, keep_dims = false, select_last = true}
  %cast: i8[16, 2] = cast(%am) {to = i8}
  return %cast, %io
}
"#,
    r#"graph g(%x: bf16[n, 3], %u: u8[2], %flag: bool[]) {
  %bn_in: bf16[n, 3, 1] = reshape(%x) {shape = [n, 3, 1]}
  %p: bf16[3] = constant [1.0, 2.0, 3.0]
  %bn: bf16[n, 3, 1] = batch_norm(%bn_in, %p, %p, %p, %p) {epsilon = 0.001}
  %ls: bf16[n, 3, 1] = log_softmax(%bn) {axis = 1}
  %not: bool[] = not(%flag)
  %k: u8[2] = constant [0, 255]
  %add: u8[2] = add(%u, %k)
  %i: i32[2, 2] = constant [-2147483648, 2147483647, 0, -1]
  %b: bool[2] = constant [true, false]
  %d: f64[] = constant [-1.7976931348623157e308]
  %mean: bf16[3, 1] = reduce_mean(%ls) {axes = [0], keep_dims = false}
  %avg: bf16[n, 3, 1] = avg_pool(%ls) {kernel = [1], strides = [1], dilations = [1], pads = [0, 0], ceil_mode = true, count_include_pad = true}
  return %avg, %add, %not, %i, %b, %d, %mean
}
"#,
];

/// Tokens that are likely to reach unusual paths when inserted anywhere.
const TRICKY: &[&str] = &[
    "-",
    "--",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "=",
    "/",
    "*",
    "+",
    "<",
    ">",
    "#",
    "\n",
    "\"",
    "\\",
    "%",
    "%\"",
    "%x",
    "%\"a\\\"b\"",
    "0",
    "1",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e400",
    "1e-400",
    "2.",
    "nan",
    "-inf",
    "inf",
    "true",
    "f32",
    "i64[]",
    "f32[n]",
    "f32[0]",
    "f32[4294967296, 4294967296]",
    "constant",
    "constant [1.0]",
    "<elided 3 elements>",
    "reshape",
    "{shape = [-1]}",
    "{shape = [9223372036854775807, 9223372036854775807]}",
    "{axis = -1}",
    "{axis = 9223372036854775807}",
    "{steps = [-9223372036854775808]}",
    "{pads = [9223372036854775807, 9223372036854775807]}",
    "{strides = [9223372036854775807]}",
    "(a+b+c+d)*(a+b+c+d)",
    "n/0",
    "é",
    "\u{0}",
    "return",
    "graph",
];

/// xorshift64: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A random range of at most `max` bytes inside `len`.
    fn range(&mut self, len: usize, max: usize) -> (usize, usize) {
        let start = self.below(len + 1);
        let end = (start + self.below(max + 1)).min(len);
        (start, end)
    }
}

fn mutate(rng: &mut Rng, text: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = text.to_vec();
    for _ in 0..1 + rng.below(3) {
        let len = out.len();
        match rng.below(8) {
            0 => {
                // Flip a byte: to printable ASCII mostly, sometimes any byte.
                if len > 0 {
                    let i = rng.below(len);
                    out[i] = if rng.below(4) == 0 { rng.next() as u8 } else { b' ' + rng.below(95) as u8 };
                }
            }
            1 => {
                let (s, e) = rng.range(len, 40);
                out.drain(s..e);
            }
            2 => {
                let (s, e) = rng.range(len, 80);
                let copy = out[s..e].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, copy);
            }
            3 => out.truncate(rng.below(len + 1)),
            4 => {
                // Splice a piece of another seed in.
                let (s, e) = rng.range(len, 60);
                let (os, oe) = rng.range(other.len(), 120);
                out.splice(s..e, other[os..oe].iter().copied());
            }
            5 => {
                // Swap two whitespace-separated tokens.
                let text = String::from_utf8_lossy(&out).into_owned();
                let mut words: Vec<&str> = text.split(' ').collect();
                if words.len() > 1 {
                    let (a, b) = (rng.below(words.len()), rng.below(words.len()));
                    words.swap(a, b);
                }
                out = words.join(" ").into_bytes();
            }
            _ => {
                let token = TRICKY[rng.below(TRICKY.len())].as_bytes();
                let (s, e) = if rng.below(2) == 0 { rng.range(len, 8) } else { (rng.below(len + 1), 0) };
                let e = e.max(s);
                out.splice(s..e, token.iter().copied());
            }
        }
    }
    out
}

/// Parses `src` and, if it parses, checks that printing round-trips. `Err(message)` on a panic
/// or a broken round trip.
fn check(src: &str) -> Result<bool, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let Ok(g) = parse(src, "fuzz.nnir") else {
            return Ok(false);
        };
        let text = print(&g);
        match parse(&text, "reprinted.nnir") {
            Ok(back) if print(&back) == text => Ok(true),
            Ok(_) => Err(format!("printing is not stable for:\n{text}")),
            Err(e) => Err(format!("the printed graph does not parse: {e}\n{text}")),
        }
    }));
    outcome.unwrap_or_else(|_| Err("parse panicked".into()))
}

#[test]
fn seeds_parse_and_round_trip() {
    for seed in SEEDS {
        assert_eq!(check(seed), Ok(true), "{seed}");
        let g = parse(seed, "seed.nnir").unwrap();
        assert_eq!(parse(&print(&g), "seed.nnir").unwrap(), g);
    }
}

#[test]
fn mutated_texts_never_panic() {
    let mut rng = Rng(0x5EED_F00D_1234_ABCD);
    let (mut parsed, mut failures) = (0usize, Vec::new());
    for (i, seed) in SEEDS.iter().enumerate() {
        let other = SEEDS[(i + 1) % SEEDS.len()].as_bytes();
        for _ in 0..MUTANTS_PER_SEED {
            let bytes = mutate(&mut rng, seed.as_bytes(), other);
            let src = String::from_utf8_lossy(&bytes).into_owned();
            match check(&src) {
                Ok(ok) => parsed += ok as usize,
                Err(why) => failures.push(format!("{why}; input:\n{src}\n")),
            }
        }
    }
    assert!(failures.is_empty(), "{} failure(s); first:\n{}", failures.len(), failures[0]);
    // The mutations should leave some texts valid (e.g. a changed number), so the round-trip
    // check above is exercised too.
    assert!(parsed > 50, "only {parsed} mutants parsed");
}

#[test]
fn every_prefix_is_handled() {
    for seed in SEEDS {
        for end in (0..=seed.len()).filter(|&i| seed.is_char_boundary(i)) {
            let prefix = &seed[..end];
            assert!(check(prefix).is_ok(), "prefix of {} bytes panicked:\n{prefix}", end);
        }
    }
}

#[test]
fn adversarial_inputs_fail_cleanly() {
    let cases = [
        format!("graph g(%x: f32[{}1]) {{ return %x }}", "-".repeat(100_000)),
        format!("graph g(%x: f32[1]) {{ %y = relu(%x) {{a = {}}} return %y }}", "[".repeat(100_000)),
        format!("graph g(%x: f32[{}]) {{ return %x }}", "(".repeat(100_000)),
        format!("graph g(%x: f32[{}]) {{ return %x }}", "1, ".repeat(50_000) + "1"),
        // Rank at the limit, then a reduction over every axis and a gather that would double it.
        format!(
            "graph g(%x: f32[{r}], %i: i64[{r}]) {{ %y = reduce_sum(%x) {{axes = [{a}], keep_dims = true}} \
             %z = gather(%y, %i) {{axis = 0}} return %z }}",
            r = vec!["1"; 1024].join(", "),
            a = (0..1024).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
        ),
        format!("graph g(%{}: f32[1]) {{ return %x }}", "x".repeat(100_000)),
        "graph g() { %c: f32[1000000000000000] = constant [1.0] return %c }".to_string(),
        "graph g() { %c: u8[1000000000, 1000000000, 1000000000] = constant [] return %c }".to_string(),
        "graph g(%x: f32[9223372036854775807, 2]) { %y = reshape(%x) {shape = [1]} return %y }".to_string(),
        "graph g(%x: f32[1, 1, 9223372036854775807]) { %y = max_pool(%x) {kernel = [9223372036854775807], \
         strides = [9223372036854775807], dilations = [9223372036854775807], pads = [9223372036854775807, 1], \
         ceil_mode = true, count_include_pad = false} return %y }"
            .to_string(),
        "graph g(%x: f32[5]) { %y = slice(%x) {axes = [0], starts = [0], ends = [5], steps = [9223372036854775807]} \
         return %y }"
            .to_string(),
        "graph g(%x: f32[5]) { %y = slice(%x) {axes = [0], starts = [4], ends = [-9223372036854775808], \
         steps = [-9223372036854775808]} return %y }"
            .to_string(),
        "graph g(%x: f32[n]) { %y = pad(%x) {pads = [-9223372036854775808, -1], mode = edge, value = 0} return %y }"
            .to_string(),
        "graph g(%x: f32[-9223372036854775807 - 1 + n]) { %y = concat(%x, %x) {axis = 0} return %y }".to_string(),
        "graph g(%x: f32[-n]) { %y = reshape(%x) {shape = [-9223372036854775808 * n]} return %y }".to_string(),
    ];
    for src in &cases {
        let shown: String = src.chars().take(200).collect();
        match check(src) {
            Ok(_) => {}
            Err(why) => panic!("{why}: {shown}"),
        }
    }
}
