//! The NCCL engine: where no NVIDIA driver or NCCL library exists it reports which one is
//! missing, without panicking inside cudarc; on a GPU host with NCCL, one rank's collectives run
//! on the GPU and agree with the interpreter.

use nnc_dist::{Communicator, DistError, NcclCommunicator};
use nnc_ir::{Collective, CollectiveReduce, TensorData};

#[test]
fn nccl_runs_one_rank_or_says_what_is_missing() {
    let mut comm = match NcclCommunicator::new(0) {
        Ok(comm) => comm,
        Err(DistError::Unavailable { engine, why }) => {
            assert_eq!(engine, "nccl");
            assert!(why.contains("libcuda.so.1") || why.contains("libnccl") || why.contains("GPU"), "{why}");
            nnc_testkit::skip::skip(&format!("no NCCL here: {why}"), false);
            return;
        }
        Err(other) => panic!("expected the engine to be unavailable or to work, got: {other}"),
    };
    assert_eq!((comm.rank(), comm.world()), (0, 1));
    let x = TensorData::from_vec(vec![2, 3], &[1.0f32, -2.0, 3.0, 4.5, 0.0, 6.0]);
    for op in CollectiveReduce::ALL {
        assert_eq!(comm.run(&Collective::AllReduce { op, world: 1 }, &x).unwrap(), x);
    }
    assert_eq!(comm.run(&Collective::AllGather { axis: 1, world: 1 }, &x).unwrap(), x);
    assert_eq!(comm.run(&Collective::Broadcast { root: 0, world: 1 }, &x).unwrap(), x);
    assert_eq!(comm.broadcast_bytes(0, b"abc").unwrap(), b"abc");
}
