//! nnc's graph optimizer: equality saturation over the Graph IR with [egg].
//!
//! [`optimize`] translates a verified [`Graph`] into an e-graph (`translate.rs`, with the
//! language in `lang.rs` and the shape/dtype analysis in `analysis.rs`), applies the named rules
//! of `rules/` until saturation or a limit, extracts the cheapest equivalent graph under a
//! [`CostModel`] (`extract.rs`, `cost.rs`) and translates it back into a verified graph.
//!
//! Every rule keeps types: it only applies where its right side has exactly the matched value's
//! dtype and shape. Saturation is always bounded by node, iteration and time limits, and the
//! result is deterministic: the same graph gives the same printed graph on every run (as long as
//! the time limit, the only limit that depends on the machine, is not what stopped it).

pub mod analysis;
pub mod cost;
pub mod extract;
pub mod fold;
pub mod lang;
pub mod rules;
pub mod translate;

#[cfg(test)]
mod soundness;
#[cfg(test)]
mod testing;

pub use cost::{Cost, CostModel};
pub use rules::{all_rules, Family, Rule};

use egg::{BackoffScheduler, Id, Runner};
use lang::Nn;
use nnc_ir::{Graph, IrError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// What `optimize` may do.
#[derive(Clone, Debug)]
pub struct OptOptions {
    /// Stop saturating when the e-graph holds this many e-nodes.
    pub node_limit: usize,
    /// Stop after this many rounds of rule application.
    pub iter_limit: usize,
    /// Stop after this long (a safety net: when it is what stops the run, the result may differ
    /// between runs, and [`Optimized::stop`] says so).
    pub time_limit: Duration,
    /// The cost extraction minimises.
    pub cost: CostModel,
    /// Apply only these rules (by name); `None` applies all of them.
    pub only: Option<Vec<String>>,
    /// Never apply these rules.
    pub disabled: Vec<String>,
    /// For tests of the rules themselves: make every e-node of the input graph very expensive,
    /// so that extraction takes whatever the rules derived wherever they derived something.
    #[doc(hidden)]
    pub prefer_rewrites: bool,
}

impl Default for OptOptions {
    fn default() -> Self {
        OptOptions {
            node_limit: 50_000,
            iter_limit: 24,
            time_limit: Duration::from_secs(5),
            cost: CostModel::default(),
            only: None,
            disabled: Vec::new(),
            prefer_rewrites: false,
        }
    }
}

impl OptOptions {
    /// The default options, applying only the named rule.
    pub fn only(rule: &str) -> OptOptions {
        OptOptions { only: Some(vec![rule.to_string()]), ..OptOptions::default() }
    }
}

/// Why saturation stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    /// No rule could add anything.
    Saturated,
    IterationLimit(usize),
    NodeLimit(usize),
    /// The time limit: the one limit whose result can differ between runs.
    TimeLimit,
    Other(String),
}

/// The result of [`optimize`].
#[derive(Clone, Debug)]
pub struct Optimized {
    /// The optimized, verified graph: same inputs (names, types, order) and outputs (names,
    /// types, order) as the input graph.
    pub graph: Graph,
    /// The rules that changed the graph and how many of their rewrites the extracted graph uses,
    /// in rule order.
    pub applied: Vec<(&'static str, usize)>,
    /// How often each rule added an equality during saturation (whether or not extraction kept
    /// its result), in rule order.
    pub fired: Vec<(&'static str, usize)>,
    pub cost_before: Cost,
    pub cost_after: Cost,
    pub stop: Stop,
    pub iterations: usize,
    /// E-nodes in the e-graph when saturation stopped.
    pub egraph_nodes: usize,
}

/// Why `optimize` failed.
#[derive(Debug, thiserror::Error)]
pub enum OptError {
    #[error("the input graph is not valid: {0}")]
    Invalid(IrError),
    #[error("unknown rule `{0}`")]
    UnknownRule(String),
    #[error("the optimized graph does not verify (an optimizer bug): {0}")]
    Rebuild(IrError),
    #[error("optimizer bug: {0}")]
    Internal(String),
}

/// Optimizes `graph` with the rules `options` selects, returning an equivalent graph that is no
/// more expensive under `options.cost`.
pub fn optimize(graph: &Graph, options: &OptOptions) -> Result<Optimized, OptError> {
    // egg times itself with `quanta`, whose global clock calibrates against the system's on
    // first use: 10 ms or more, a third of a small model's whole compile. A mock clock, moved
    // to the real elapsed time at the start of each iteration (`with_hook` below), keeps the
    // time limit at the granularity egg checks it, without the calibration.
    let (clock, mock) = quanta::Clock::mock();
    quanta::with_clock(&clock, || optimize_with_clock(graph, options, mock))
}

fn optimize_with_clock(graph: &Graph, options: &OptOptions, clock: Arc<quanta::Mock>) -> Result<Optimized, OptError> {
    let started = std::time::Instant::now();
    nnc_ir::verify(graph).map_err(OptError::Invalid)?;
    let rules = select_rules(options)?;
    let model = &options.cost;
    let cost_before = model.graph_cost(graph);

    let t = translate::to_egraph(graph)?;
    let rewrites: Vec<_> = rules.iter().flat_map(|r| r.to_egg()).collect();
    let mut runner = Runner::default()
        .with_egraph(t.egraph)
        .with_node_limit(options.node_limit)
        .with_iter_limit(options.iter_limit)
        .with_time_limit(options.time_limit)
        .with_scheduler(BackoffScheduler::default())
        .with_hook(move |_| {
            let real = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            clock.increment(real.saturating_sub(clock.value()));
            Ok(())
        });
    runner.roots = t.roots.clone();
    let runner = runner.run(&rewrites);
    let egraph = runner.egraph;
    let stop = match runner.stop_reason {
        Some(egg::StopReason::Saturated) | None => Stop::Saturated,
        Some(egg::StopReason::IterationLimit(n)) => Stop::IterationLimit(n),
        Some(egg::StopReason::NodeLimit(n)) => Stop::NodeLimit(n),
        Some(egg::StopReason::TimeLimit(_)) => Stop::TimeLimit,
        Some(egg::StopReason::Other(s)) => Stop::Other(s),
    };
    let mut fired_by_name: HashMap<&str, usize> = HashMap::new();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            let base = name.as_str().split('#').next().unwrap_or_default();
            *fired_by_name.entry(base).or_default() += n;
        }
    }

    let canon = |n: &Nn| n.clone().map_children_canon(&egraph);
    let penalized: HashSet<Nn> = if options.prefer_rewrites {
        t.original.iter().flatten().filter(|n| !n.children.is_empty()).map(canon).collect()
    } else {
        HashSet::new()
    };
    // Two extractions, one counting shared values whole and one amortizing them; the graph that
    // costs less (counting every node once) wins, the tree one on a tie.
    let mut best: Option<(HashMap<Id, Nn>, Graph, Cost)> = None;
    for sharing in [extract::Sharing::Tree, extract::Sharing::Amortized] {
        let choice = extract::extract(&egraph, model, &penalized, sharing);
        if best.as_ref().is_some_and(|(c, _, _)| *c == choice) {
            continue;
        }
        let g = translate::to_graph(graph, &egraph, &t.roots, &t.classes, &choice)?;
        let cost = model.graph_cost(&g);
        if best.as_ref().is_none_or(|(_, _, c)| cost.total(model) < c.total(model)) {
            best = Some((choice, g, cost));
        }
    }
    let (choice, new_graph, cost_after) = best.ok_or_else(|| OptError::Internal("no extraction".into()))?;

    // Which rewrites the extracted graph uses: one that made e-nodes counts if extraction chose
    // one of them; one whose right side is an existing e-class (`x * 1 → x`) counts if the
    // e-class it matched lost the e-node an original value had there.
    let reachable = reachable_classes(&egraph, &t.roots, &choice);
    let changed: HashSet<Id> = t
        .classes
        .iter()
        .zip(&t.original)
        .filter_map(|(c, n)| {
            let class = egraph.find((*c)?);
            let chosen = choice.get(&class)?;
            (reachable.contains(&class) && *chosen != canon(n.as_ref()?)).then_some(class)
        })
        .collect();
    let mut used: BTreeMap<&str, HashSet<Id>> = BTreeMap::new();
    for (name, class, made) in &egraph.analysis.log {
        let class = egraph.find(*class);
        let counts = if made.is_empty() {
            changed.contains(&class)
        } else {
            made.iter().any(|(id, node)| {
                let c = egraph.find(*id);
                reachable.contains(&c) && choice.get(&c) == Some(&canon(node))
            })
        };
        if counts {
            used.entry(name).or_default().insert(class);
        }
    }

    let order = |counts: &dyn Fn(&str) -> usize| -> Vec<(&'static str, usize)> {
        rules.iter().map(|r| (r.name, counts(r.name))).filter(|(_, n)| *n > 0).collect()
    };
    let mut applied = order(&|name| used.get(name).map_or(0, HashSet::len));
    let fired = order(&|name| fired_by_name.get(name).copied().unwrap_or(0));

    // Extraction minimises a tree cost; should the graph's cost have grown (values shared by
    // several users count once in a graph), keep the input graph.
    let (graph, cost_after) = if cost_after.total(model) > cost_before.total(model) && !options.prefer_rewrites {
        applied.clear();
        (graph.clone(), cost_before)
    } else {
        (new_graph, cost_after)
    };
    Ok(Optimized {
        graph,
        applied,
        fired,
        cost_before,
        cost_after,
        stop,
        iterations: runner.iterations.len(),
        egraph_nodes: egraph.total_size(),
    })
}

fn select_rules(options: &OptOptions) -> Result<Vec<Rule>, OptError> {
    let all = all_rules();
    let known = |name: &String| {
        if all.iter().any(|r| r.name == name) {
            Ok(())
        } else {
            Err(OptError::UnknownRule(name.clone()))
        }
    };
    options.disabled.iter().try_for_each(known)?;
    if let Some(only) = &options.only {
        only.iter().try_for_each(known)?;
    }
    Ok(all
        .into_iter()
        .filter(|r| options.only.as_ref().is_none_or(|o| o.iter().any(|n| n == r.name)))
        .filter(|r| !options.disabled.iter().any(|n| n == r.name))
        .collect())
}

/// The e-classes the chosen e-nodes reach from the roots.
fn reachable_classes(
    egraph: &egg::EGraph<Nn, analysis::NnAnalysis>,
    roots: &[Id],
    choice: &HashMap<Id, Nn>,
) -> HashSet<Id> {
    let mut seen = HashSet::new();
    let mut stack: Vec<Id> = roots.iter().map(|&r| egraph.find(r)).collect();
    while let Some(c) = stack.pop() {
        if !seen.insert(c) {
            continue;
        }
        if let Some(n) = choice.get(&c) {
            stack.extend(n.children.iter().map(|&k| egraph.find(k)));
        }
    }
    seen
}

trait Canon {
    fn map_children_canon(self, egraph: &egg::EGraph<Nn, analysis::NnAnalysis>) -> Self;
}

impl Canon for Nn {
    fn map_children_canon(self, egraph: &egg::EGraph<Nn, analysis::NnAnalysis>) -> Nn {
        use egg::Language;
        self.map_children(|c| egraph.find(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::text;

    const ATTENTION: &str = "graph attn(%q: f32[1, 2, 4, 8], %k: f32[1, 2, 4, 8], %v: f32[1, 2, 4, 8]) {
      %c: f32[1] = constant [0.59460354]
      %kt: f32[1, 2, 8, 4] = transpose(%k) {perm = [0, 1, 3, 2]}
      %qs: f32[1, 2, 4, 8] = mul(%q, %c)
      %ks: f32[1, 2, 8, 4] = mul(%kt, %c)
      %s: f32[1, 2, 4, 4] = matmul(%qs, %ks)
      %m: f32[1, 2, 4, 1] = reduce_max(%s) {axes = [3], keep_dims = true}
      %d: f32[1, 2, 4, 4] = sub(%s, %m)
      %e: f32[1, 2, 4, 4] = exp(%d)
      %z: f32[1, 2, 4, 1] = reduce_sum(%e) {axes = [3], keep_dims = true}
      %p: f32[1, 2, 4, 4] = div(%e, %z)
      %o: f32[1, 2, 4, 8] = matmul(%p, %v)
      %t: f32[1, 4, 2, 8] = transpose(%o) {perm = [0, 2, 1, 3]}
      %t2: f32[1, 2, 4, 8] = transpose(%t) {perm = [0, 2, 1, 3]}
      %one: f32[] = constant [1.0]
      %y: f32[1, 2, 4, 8] = mul(%t2, %one)
      return %y
    }";

    fn attention() -> Graph {
        text::parse(ATTENTION, "attn.nnir").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn optimizing_twice_prints_identically() {
        let g = attention();
        let a = optimize(&g, &OptOptions::default()).unwrap();
        let b = optimize(&g, &OptOptions::default()).unwrap();
        assert_eq!(text::print(&a.graph), text::print(&b.graph));
        assert_eq!(a.applied, b.applied);
        assert_eq!(a.stop, Stop::Saturated);
        // Optimizing the result again finds nothing more to do.
        let c = optimize(&a.graph, &OptOptions::default()).unwrap();
        assert_eq!(text::print(&c.graph), text::print(&a.graph));
        assert!(c.applied.is_empty(), "{:?}", c.applied);
        let printed = text::print(&a.graph);
        assert!(printed.contains("= attention(%q, %k, %v) {scale = 0.3535533547401428, causal = false}"), "{printed}");
        assert_eq!(a.graph.nodes.len(), 1, "{printed}");
        assert!(a.cost_after.total(&CostModel::default()) < a.cost_before.total(&CostModel::default()));
    }

    #[test]
    fn limits_always_apply() {
        let g = attention();
        let tiny = OptOptions { node_limit: 5, ..OptOptions::default() };
        let opt = optimize(&g, &tiny).unwrap();
        assert!(matches!(opt.stop, Stop::NodeLimit(_)), "{:?}", opt.stop);
        nnc_ir::verify(&opt.graph).unwrap();
        let one = OptOptions { iter_limit: 1, ..OptOptions::default() };
        let opt = optimize(&g, &one).unwrap();
        assert_eq!(opt.stop, Stop::IterationLimit(1));
        let none = OptOptions { time_limit: Duration::ZERO, ..OptOptions::default() };
        assert_eq!(optimize(&g, &none).unwrap().stop, Stop::TimeLimit);
    }

    #[test]
    fn rule_selection_is_checked() {
        let g = attention();
        assert!(matches!(optimize(&g, &OptOptions::only("no_such_rule")), Err(OptError::UnknownRule(_))));
        let off =
            OptOptions { disabled: all_rules().iter().map(|r| r.name.to_string()).collect(), ..Default::default() };
        let opt = optimize(&g, &off).unwrap();
        assert!(opt.applied.is_empty() && opt.fired.is_empty());
        assert_eq!(opt.cost_after, opt.cost_before);
    }

    #[test]
    fn invalid_graphs_are_errors() {
        let mut g = attention();
        g.outputs.clear();
        assert!(matches!(optimize(&g, &OptOptions::default()), Err(OptError::Invalid(_))));
    }
}

#[cfg(test)]
mod deep_tests {
    use super::*;
    use nnc_ir::{DType, GraphBuilder, TensorData};

    /// A chain of residual blocks `x = x + relu((x * 2) * 3)`: every value is used twice, so tree
    /// costs double at every block; extraction must still see each block's saving.
    #[test]
    fn deep_residual_chains_are_optimized_everywhere() {
        let mut b = GraphBuilder::new("deep");
        let mut x = b.input("x", DType::F32, [4]).unwrap();
        let two = b.constant(TensorData::scalar(2.0f32));
        let three = b.constant(TensorData::scalar(3.0f32));
        for _ in 0..80 {
            let m = b.mul(x, two).unwrap();
            let m = b.mul(m, three).unwrap();
            let r = b.relu(m).unwrap();
            x = b.add(x, r).unwrap();
        }
        b.output(x);
        let g = b.finish().unwrap();
        let opt = optimize(&g, &OptOptions::default()).unwrap();
        let muls = opt.graph.nodes.iter().filter(|n| n.op == nnc_ir::Op::Binary(BinaryOp::Mul)).count();
        assert_eq!(muls, 80, "{}", nnc_ir::text::print(&opt.graph));
        assert_eq!(opt.applied, vec![("mul_mul_const", 80)]);
    }

    use nnc_ir::BinaryOp;

    /// Weights are referred to, not copied: the optimized graph's constants share the input
    /// graph's bytes, also through a folded reshape.
    #[test]
    fn weights_are_shared_not_copied() {
        let mut b = GraphBuilder::new("w");
        let x = b.input("x", DType::F32, [2, 100]).unwrap();
        let w = b.constant(TensorData::from_vec(vec![10000], &vec![0.5f32; 10000]));
        let w2 = b.reshape(w, vec![100.into(), 100.into()]).unwrap();
        let y = b.matmul(x, w2).unwrap();
        b.output(y);
        let g = b.finish().unwrap();
        let ptr = |g: &Graph| {
            g.nodes
                .iter()
                .find_map(|n| match &n.op {
                    nnc_ir::Op::Constant(t) => Some(t.bytes().as_ptr()),
                    _ => None,
                })
                .unwrap()
        };
        let opt = optimize(&g, &OptOptions::default()).unwrap();
        assert_eq!(opt.applied, vec![("fold_reshape", 1)]);
        assert_eq!(ptr(&g), ptr(&opt.graph));
    }

    /// Multi-result ops stay one node whose results are used separately.
    #[test]
    fn multi_result_ops_round_trip() {
        let src = "graph r(%x: f32[3, 1, 2], %w: f32[1, 2, 2], %r: f32[1, 2, 2], %b: f32[1, 4], %h: f32[1, 1, 2]) {
          %y, %yh = rnn(%x, %w, %r, %b, %h) {hidden = 2, direction = forward}
          %one: f32[] = constant [1.0]
          %a: f32[3, 1, 1, 2] = mul(%y, %one)
          %n: f32[1, 1, 2] = neg(%yh)
          %m: f32[1, 1, 2] = neg(%n)
          %e: f32[1, 1, 2] = exp(%m)
          return %a, %e, %yh
        }";
        let g = nnc_ir::text::parse(src, "r.nnir").unwrap();
        let opt = optimize(&g, &OptOptions::default()).unwrap();
        let printed = nnc_ir::text::print(&opt.graph);
        // `%y` became `%a` (`y * 1`): outputs keep their names first.
        assert!(printed.contains("%a: f32[3, 1, 1, 2], %yh: f32[1, 1, 2] = rnn(%x, %w, %r, %b, %h)"), "{printed}");
        assert!(printed.contains("%e: f32[1, 1, 2] = exp(%yh)"), "{printed}");
        assert_eq!(printed.matches("rnn(").count(), 1, "{printed}");
        crate::testing::agree(&g, &opt.graph, 1e-6);
    }
}
