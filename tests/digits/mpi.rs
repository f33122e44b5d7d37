//! Data-parallel training of the digits MLP on two MPI processes (`nnc_testkit::mpi`): after
//! every step both ranks hold bit-identical parameters; after a fixed number of steps they match
//! a one-process run on the same global batches within rounding; a checkpoint taken at step k
//! and resumed gives, at step k+m, exactly the uninterrupted run's parameters, and loads into one
//! process; and 60 epochs reach the one-process run's test accuracy.

use crate::example::*;
use nnc::dist::{Communicator, DistSession, MpiCommunicator};
use nnc::ir::TensorData;
use nnc_testkit::mpi::{in_rank, mpirun};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

const DIR_ENV: &str = "NNC_DIGITS_MPI_DIR";

#[test]
fn data_parallel_digits_training_on_two_mpi_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let out = mpirun("mpi::rank_body_digits", 2, &[(DIR_ENV, dir.path().to_str().unwrap())]);
    eprintln!("{}", out.lines().filter(|l| l.contains("rank 0:")).collect::<Vec<_>>().join("\n"));
}

/// Every value of `state` within 1e-4 (relative, or absolute below 1) of `two_ranks`'s.
fn assert_close(state: &[TensorData], two_ranks: &[TensorData], what: &str) {
    for (a, b) in state.iter().zip(two_ranks) {
        for (x, y) in a.to_vec::<f32>().unwrap().iter().zip(b.to_vec::<f32>().unwrap()) {
            assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "{what} {x} vs two ranks {y}");
        }
    }
}

fn bytes_of(state: &[TensorData]) -> Vec<u8> {
    state.iter().flat_map(|t| t.bytes().iter().copied()).collect()
}

#[test]
#[ignore = "a rank of data_parallel_digits_training_on_two_mpi_ranks, run under mpirun"]
fn rank_body_digits() {
    if !in_rank() {
        return;
    }
    let model = Model::Mlp;
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("the parent test names a directory"));
    let comm = MpiCommunicator::init().unwrap();
    let shard = Shard { rank: comm.rank(), world: comm.world() };
    let options = nnc::SessionOptions { threads: Some(1), ..nnc::SessionOptions::target(nnc::Target::Cpu) };
    let session =
        DistSession::new(data_parallel_step_graph(model, shard.world).unwrap(), options, Box::new(comm)).unwrap();
    let step = Distributed(RefCell::new(session));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv.gz");
    let (train_set, test_set) = split(&load(&path).unwrap());
    let (k, m) = (10, 10);
    let checkpoint = dir.join("step10.safetensors");

    // k + m steps, comparing every rank's parameters with rank 0's after each, saving at step k.
    let mut identical_steps = 0;
    let (uninterrupted, _) = run_steps(&step, initial_state(model), &train_set, shard, 0, k + m, |s, state| {
        let mine = bytes_of(state);
        let lead = step.0.borrow_mut().communicator().broadcast_bytes(0, &mine)?;
        assert!(mine == lead, "rank {}: parameters differ from rank 0's after step {s}", shard.rank);
        identical_steps += 1;
        if s + 1 == k && shard.rank == 0 {
            save_state(&checkpoint, model, state, k)?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(identical_steps, k + m);
    step.0.borrow_mut().communicator().barrier().unwrap();

    // Resumed from the checkpoint: exactly the uninterrupted parameters.
    let (resumed_from, done) = load_state(&checkpoint, model).unwrap();
    assert_eq!(done, k);
    let (resumed, _) = run_steps(&step, resumed_from.clone(), &train_set, shard, k, m, |_, _| Ok(())).unwrap();
    assert!(bytes_of(&resumed) == bytes_of(&uninterrupted), "a resumed run must end where the uninterrupted one does");

    // One process on the whole batches: the same parameters within rounding, and it can continue
    // from the checkpoint the two ranks wrote.
    if shard.rank == 0 {
        let single = Compiled::new(&step_graph(model).unwrap()).unwrap();
        let (alone, _) =
            run_steps(&single, initial_state(model), &train_set, Shard::WHOLE, 0, k + m, |_, _| Ok(())).unwrap();
        assert_close(&alone, &uninterrupted, "one process");
        let (continued, _) = run_steps(&single, resumed_from, &train_set, Shard::WHOLE, k, m, |_, _| Ok(())).unwrap();
        assert_close(&continued, &uninterrupted, "one process from the checkpoint");
    }

    // 60 epochs reach the one-process accuracy (the example's test asks for 95%).
    let eval = Compiled::new(&eval_graph(model, test_set.len()).unwrap()).unwrap();
    let fresh = (initial_state(model), 0);
    let (losses, accuracy) =
        train(&step, &eval, &train_set, &test_set, 60, shard, fresh, || {}, |_, _, _, _| Ok(())).unwrap();
    let stats = step.0.borrow().stats().clone();
    if shard.rank == 0 {
        let single = Compiled::new(&step_graph(model).unwrap()).unwrap();
        let fresh = (initial_state(model), 0);
        let (_, alone) =
            train(&single, &eval, &train_set, &test_set, 60, Shard::WHOLE, fresh, || {}, |_, _, _, _| Ok(())).unwrap();
        println!(
            "rank 0: accuracy {accuracy:.3} on 2 ranks, {alone:.3} in one process; loss {:.4} -> {:.4}; per step {:.3} ms computing, {:.3} ms communicating, {} bytes sent",
            losses[0],
            losses[59],
            stats.compute.as_secs_f64() * 1e3 / stats.runs as f64,
            stats.communication.as_secs_f64() * 1e3 / stats.runs as f64,
            stats.bytes_sent / stats.runs
        );
        assert!(accuracy >= 0.95 && (accuracy - alone).abs() <= 0.01, "2 ranks {accuracy} vs one process {alone}");
    }
}
