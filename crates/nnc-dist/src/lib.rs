//! nnc's distributed execution: programs that span several ranks.
//!
//! - Collectives are Graph IR ops (`nnc_ir::collective`), with gradient rules (`nnc-autodiff`)
//!   and an N-rank reference semantics (`nnc_interp::run_ranks`);
//! - [`Communicator`] is the engine that runs them: [`SingleRank`] for a world of one,
//!   [`MpiCommunicator`] for CPU ranks (one process each, under `mpirun`), [`NcclCommunicator`]
//!   for GPU ranks;
//! - [`DistSession`] runs one rank of a graph: split at its collectives ([`stages`]), each stretch
//!   compiled for a target as an `nnc_runtime::Session`;
//! - [`data_parallel`] builds training steps that average gradients over the ranks in buckets;
//!   [`tensor_parallel`] splits a transformer layer's weights over the ranks;
//! - [`checkpoint`] saves and loads parameters and optimizer state (safetensors).

pub mod checkpoint;
pub mod comm;
pub mod data_parallel;
mod error;
#[cfg(feature = "mpi")]
mod mpi_engine;
pub mod nccl_engine;
pub mod session;
pub mod stages;
pub mod tensor_parallel;

pub use checkpoint::Checkpoint;
pub use comm::{Communicator, SingleRank};
pub use data_parallel::DataParallel;
pub use error::DistError;
#[cfg(feature = "mpi")]
pub use mpi_engine::MpiCommunicator;
pub use nccl_engine::NcclCommunicator;
pub use session::{DistSession, RunStats};
