//! The MPI engine against the interpreter's N-rank semantics, with real processes
//! (`nnc_testkit::mpi`: each test runs `mpirun -np N` on this binary, whose ranks run an ignored
//! rank body that checks its own results).

use nnc_dist::tensor_parallel::{layer_graph, shard_weights, weight_shapes, LayerShape};
use nnc_dist::{Communicator, DistSession, MpiCommunicator};
use nnc_interp::run_ranks;
use nnc_ir::{Collective, CollectiveReduce, DType, GraphBuilder, Op, TensorData};
use nnc_runtime::{SessionOptions, Target};
use nnc_testkit::mpi::{in_rank, mpirun};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// One random collective call: the collective, the operand's dtype and shape, and a seed for
/// the ranks' values.
#[derive(Clone, Debug)]
struct Case {
    collective: Collective,
    dtype: DType,
    shape: Vec<usize>,
    seed: u64,
}

fn cases(world: usize) -> impl Strategy<Value = Case> {
    let reduce = prop::sample::select(CollectiveReduce::ALL.to_vec());
    let dtype =
        prop::sample::select(vec![DType::F32, DType::F64, DType::I32, DType::I64, DType::U8, DType::I8, DType::U16]);
    (0..4usize, reduce, dtype, prop::collection::vec(1..5usize, 1..4), any::<usize>(), any::<u64>()).prop_map(
        move |(kind, op, dtype, mut shape, pick, seed)| {
            let axis = pick % shape.len();
            let op = if dtype.is_float() || op != CollectiveReduce::Mean { op } else { CollectiveReduce::Sum };
            let collective = match kind {
                0 => Collective::AllReduce { op, world },
                1 => Collective::AllGather { axis, world },
                2 => {
                    shape[axis] *= world;
                    Collective::ReduceScatter { op, axis, world }
                }
                _ => Collective::Broadcast { root: pick % world, world },
            };
            Case { collective, dtype, shape, seed }
        },
    )
}

/// Rank `rank`'s operand of `case`: small integers (so sums of a few ranks stay exact in every
/// dtype, and max/min compare exactly), scaled for floats.
fn operand(case: &Case, rank: usize) -> TensorData {
    let n: usize = case.shape.iter().product();
    let mut state = case.seed ^ (rank as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let values: Vec<f64> = (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let v = ((state >> 33) % 61) as f64 - 30.0;
            if case.dtype.is_float() {
                v * 0.37
            } else if matches!(case.dtype, DType::U8 | DType::U16) {
                v + 30.0
            } else {
                v
            }
        })
        .collect();
    TensorData::from_f64(case.dtype, case.shape.clone(), &values)
}

#[test]
fn collectives_agree_with_the_interpreter_on_two_and_three_ranks() {
    mpirun("mpi::rank_body_collectives", 2, &[]);
    mpirun("mpi::rank_body_collectives", 3, &[]);
}

#[test]
#[ignore = "a rank of collectives_agree_with_the_interpreter_on_two_and_three_ranks, run under mpirun"]
fn rank_body_collectives() {
    if !in_rank() {
        return;
    }
    let mut comm = MpiCommunicator::init().unwrap();
    let (rank, world) = (comm.rank(), comm.world());
    // The same seed on every rank: every rank draws the same cases, in the same order.
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let strategy = cases(world);
    for k in 0..100 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let mut b = GraphBuilder::new("case");
        let x = b.input("x", case.dtype, case.shape.iter().copied()).unwrap();
        let y = b.op1(Op::Collective(case.collective.clone()), &[x]).unwrap();
        b.output(y);
        let graph = b.finish().unwrap();
        let all: Vec<Vec<TensorData>> = (0..world).map(|r| vec![operand(&case, r)]).collect();
        let expected = &run_ranks(&graph, &all).unwrap()[rank][0];
        let got = comm.run(&case.collective, &all[rank][0]).unwrap();
        assert_eq!(got.shape(), expected.shape(), "case {k}: {case:?}");
        assert_eq!(got.dtype(), expected.dtype(), "case {k}: {case:?}");
        // Integers and sums of small integers are exact; a float mean may round differently.
        for (g, e) in got.to_f64_vec().iter().zip(expected.to_f64_vec()) {
            assert!((g - e).abs() <= 1e-6 * e.abs().max(1.0), "case {k} on rank {rank}: {g} vs {e}: {case:?}");
        }
    }
    // A collective for another world size is refused before any communication.
    let wrong = Collective::AllGather { axis: 0, world: world + 1 };
    let err = comm.run(&wrong, &TensorData::from_vec(vec![1], &[1.0f32])).unwrap_err().to_string();
    assert!(err.contains(&format!("this world has {world}")), "{err}");
    // A reduction of a dtype MPI has no operation for says which.
    let half = Collective::AllReduce { op: CollectiveReduce::Sum, world };
    let err = comm.run(&half, &TensorData::from_f64(DType::F16, vec![2], &[1.0, 2.0])).unwrap_err().to_string();
    assert!(err.contains("not f16"), "{err}");
}

#[test]
fn a_tensor_parallel_layer_compiled_for_the_cpu_runs_on_two_mpi_ranks() {
    mpirun("mpi::rank_body_tensor_parallel", 2, &[]);
}

#[test]
#[ignore = "a rank of a_tensor_parallel_layer_compiled_for_the_cpu_runs_on_two_mpi_ranks, run under mpirun"]
fn rank_body_tensor_parallel() {
    if !in_rank() {
        return;
    }
    let comm = MpiCommunicator::init().unwrap();
    let (rank, world) = (comm.rank(), comm.world());
    let s = LayerShape { seq: 6, dim: 16, heads: 4, hidden: 32 };
    let value = |i: usize, k: usize| (((i * 37 + k * 11) % 41) as f32 - 20.0) / 50.0;
    let whole: Vec<TensorData> = weight_shapes(s)
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let n: usize = shape.iter().product();
            let offset = if name.ends_with("_scale") { 1.0 } else { 0.0 };
            TensorData::from_vec(shape, &(0..n).map(|i| value(i, k) + offset).collect::<Vec<f32>>())
        })
        .collect();
    let x = TensorData::from_vec(vec![s.seq, s.dim], &(0..s.seq * s.dim).map(|i| value(i, 99)).collect::<Vec<f32>>());
    let graph = layer_graph(s, world).unwrap();
    let inputs: Vec<Vec<TensorData>> = (0..world)
        .map(|r| {
            let mut ins = vec![x.clone()];
            ins.extend(shard_weights(s, &whole, r, world).unwrap());
            ins
        })
        .collect();
    let expected = run_ranks(&graph, &inputs).unwrap().swap_remove(rank).swap_remove(0).to_vec::<f32>().unwrap();
    let mut session = DistSession::new(graph, SessionOptions::target(Target::Cpu), Box::new(comm)).unwrap();
    let got = session.run(&inputs[rank]).unwrap()[0].to_vec::<f32>().unwrap();
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() <= 1e-4 * e.abs().max(1.0), "rank {rank}: {g} vs {e}");
    }
    assert_eq!(session.stats().collectives, 2);
}
