//! ONNX models that run staged ([`nnc_onnx::staged`]: control flow, sequences and data-shaped
//! ops on the host, between compiled graphs) on any target of the registry: each compiled
//! stretch of the model is a [`Session`] with the same options.

use crate::{Session, SessionOptions};
use nnc_ir::{Graph, TensorData};
use nnc_onnx::staged::{GraphRunner, Staged, StagedModel};

/// Compiles each stretch of a staged model as a [`Session`] of one target.
pub struct SessionRunner {
    options: SessionOptions,
    sessions: Vec<Session>,
}

impl SessionRunner {
    pub fn new(options: SessionOptions) -> SessionRunner {
        SessionRunner { options, sessions: Vec::new() }
    }

    /// The sessions made so far, one per compiled graph.
    pub fn sessions(&self) -> &[Session] {
        &self.sessions
    }
}

impl GraphRunner for SessionRunner {
    fn compile(&mut self, graph: Graph) -> Result<usize, String> {
        let mut session = Session::new(graph, self.options.clone()).map_err(|e| e.to_string())?;
        // Every shape of a stretch is static: compile now, so a run's time is the run's.
        let shapes: Vec<Vec<usize>> = session
            .inputs()
            .iter()
            .map(|(_, ty)| ty.static_shape().ok_or("a stretch with a symbolic shape"))
            .collect::<Result<_, _>>()?;
        session.prepare(&shapes).map_err(|e| e.to_string())?;
        self.sessions.push(session);
        Ok(self.sessions.len() - 1)
    }

    fn run(&mut self, handle: usize, inputs: &[TensorData]) -> Result<Vec<TensorData>, String> {
        self.sessions[handle].run(inputs).map_err(|e| e.to_string())
    }
}

/// A staged model run on a target: see [`nnc_onnx::staged::Staged`].
pub type StagedSession = Staged<SessionRunner>;

/// Prepares `model` for staged runs with `options`; nothing is compiled until a run needs it.
pub fn staged_session(model: StagedModel, options: SessionOptions) -> StagedSession {
    Staged::new(model, SessionRunner::new(options))
}
