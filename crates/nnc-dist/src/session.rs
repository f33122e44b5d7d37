//! [`DistSession`]: a graph with collectives, run as one rank of a world. The graph is split at
//! its collectives (module `stages`); each compute stage is an `nnc_runtime::Session` of the
//! chosen target, and each collective runs on the session's [`Communicator`].

use crate::stages::{split, Step};
use crate::{Communicator, DistError};
use nnc_ir::{Graph, Op, TensorData, ValueId};
use nnc_runtime::{Session, SessionOptions};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Where the time and bytes of the runs so far went, on this rank.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStats {
    pub runs: u64,
    /// Time in compute stages.
    pub compute: Duration,
    /// Time in collectives (waiting for the slowest rank included).
    pub communication: Duration,
    /// The bytes of this rank's collective operands.
    pub bytes_sent: u64,
    pub collectives: u64,
}

enum Compiled {
    Compute { session: Box<Session>, inputs: Vec<ValueId>, outputs: Vec<ValueId> },
    Collective { collective: nnc_ir::Collective, input: ValueId, output: ValueId },
}

/// One rank's view of a program that spans a world: compiled once, run as often as needed.
pub struct DistSession {
    graph_inputs: Vec<ValueId>,
    graph_outputs: Vec<ValueId>,
    steps: Vec<Compiled>,
    comm: Box<dyn Communicator>,
    stats: RunStats,
}

impl DistSession {
    /// Splits `graph` at its collectives and compiles each stage for `options.target`. Every
    /// collective must span `comm`'s world.
    pub fn new(graph: Graph, options: SessionOptions, comm: Box<dyn Communicator>) -> Result<DistSession, DistError> {
        nnc_ir::verify(&graph)?;
        for (i, node) in graph.nodes.iter().enumerate() {
            if let Op::Collective(c) = &node.op {
                if c.world() != comm.world() {
                    return Err(DistError::Program(format!(
                        "node `{}` spans {} ranks, but the {} engine's world has {}",
                        graph.describe_node(i),
                        c.world(),
                        comm.engine(),
                        comm.world()
                    )));
                }
            }
        }
        let mut steps = Vec::new();
        for (k, step) in split(&graph).into_iter().enumerate() {
            steps.push(match step {
                Step::Compute { graph, inputs, outputs } => {
                    let session =
                        Session::new(graph, options.clone()).map_err(|source| DistError::Stage { stage: k, source })?;
                    Compiled::Compute { session: Box::new(session), inputs, outputs }
                }
                Step::Collective { collective, input, output } => Compiled::Collective { collective, input, output },
            });
        }
        Ok(DistSession {
            graph_inputs: graph.inputs,
            graph_outputs: graph.outputs,
            steps,
            comm,
            stats: RunStats::default(),
        })
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub fn world(&self) -> usize {
        self.comm.world()
    }

    /// How many compute stages and collectives the program has.
    pub fn shape(&self) -> (usize, usize) {
        let compute = self.steps.iter().filter(|s| matches!(s, Compiled::Compute { .. })).count();
        (compute, self.steps.len() - compute)
    }

    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// The engine, for collectives the caller makes itself (such as comparing parameters).
    pub fn communicator(&mut self) -> &mut dyn Communicator {
        self.comm.as_mut()
    }

    /// Runs this rank's part on its `inputs` (in the graph's input order); returns this rank's
    /// outputs. Every rank must call `run` the same number of times.
    pub fn run(&mut self, inputs: &[TensorData]) -> Result<Vec<TensorData>, DistError> {
        if inputs.len() != self.graph_inputs.len() {
            return Err(DistError::Program(format!(
                "the program takes {} inputs, {} given",
                self.graph_inputs.len(),
                inputs.len()
            )));
        }
        let mut env: HashMap<ValueId, TensorData> =
            self.graph_inputs.iter().copied().zip(inputs.iter().cloned()).collect();
        let missing = |v: ValueId| DistError::Program(format!("internal: value #{} was not computed", v.index()));
        for (k, step) in self.steps.iter_mut().enumerate() {
            match step {
                Compiled::Compute { session, inputs, outputs } => {
                    let start = Instant::now();
                    let args = inputs.iter().map(|v| env.get(v).cloned().ok_or_else(|| missing(*v))).collect::<Result<
                        Vec<_>,
                        _,
                    >>(
                    )?;
                    let results = session.run(&args).map_err(|source| DistError::Stage { stage: k, source })?;
                    env.extend(outputs.iter().copied().zip(results));
                    self.stats.compute += start.elapsed();
                }
                Compiled::Collective { collective, input, output } => {
                    let start = Instant::now();
                    let x = env.get(input).ok_or_else(|| missing(*input))?;
                    self.stats.bytes_sent += x.bytes().len() as u64;
                    self.stats.collectives += 1;
                    let y = self.comm.run(collective, x)?;
                    env.insert(*output, y);
                    self.stats.communication += start.elapsed();
                }
            }
        }
        self.stats.runs += 1;
        self.graph_outputs.iter().map(|v| env.get(v).cloned().ok_or_else(|| missing(*v))).collect()
    }
}
