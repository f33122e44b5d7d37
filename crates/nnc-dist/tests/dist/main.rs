//! nnc-dist's tests, one binary (each test binary links LLVM through the CPU backend):
//! collectives without an engine (`collectives`), the MPI engine with real processes (`mpi`),
//! and the NCCL engine where a GPU exists (`nccl`).

mod collectives;
#[cfg(feature = "mpi")]
mod mpi;
mod nccl;
