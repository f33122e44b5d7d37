//! Why a distributed run failed.

/// An error of `nnc-dist`; each says which rank, collective, file or value it is about.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The collective engine failed or was asked something it cannot do.
    #[error("{engine} engine, rank {rank}: {message}")]
    Engine { engine: &'static str, rank: usize, message: String },
    /// An engine that this build or this machine does not have.
    #[error("the {engine} engine is not available: {why}")]
    Unavailable { engine: &'static str, why: String },
    /// A program or its inputs do not fit the world they run on.
    #[error("{0}")]
    Program(String),
    /// Compiling or running a stage failed.
    #[error("stage {stage}: {source}")]
    Stage { stage: usize, source: nnc_runtime::SessionError },
    #[error(transparent)]
    Graph(#[from] nnc_ir::IrError),
    #[error(transparent)]
    Grad(#[from] nnc_autodiff::GradError),
    /// A checkpoint could not be written or read.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: String, message: String },
}
