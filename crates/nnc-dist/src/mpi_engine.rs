//! The MPI engine: one process per rank, collectives through rsmpi on the system's MPI library
//! (Open MPI on Debian), started by `mpirun -np N` on one machine or, with a host file, many.
//!
//! Reductions run on the operand's own element type (`f32`, `f64` and the integers); `mean` is
//! MPI's sum divided by the world size. `all_gather`, `reduce_scatter` along an inner axis and
//! `broadcast` move bytes, reordered so that each rank's block is contiguous (module `comm`).

use crate::comm::{check_collective, part_major_to_axis, scatter_operand, AxisBlocks, Communicator};
use crate::DistError;
use bytes::Bytes;
use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::topology::Communicator as _;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use nnc_ir::{Collective, CollectiveReduce, DType, Element, TensorData};

/// The ranks of `MPI_COMM_WORLD`. MPI is initialized when this is made and finalized when it is
/// dropped; a process can do that once.
pub struct MpiCommunicator {
    world: SimpleCommunicator,
    // Dropped last: finalizes MPI.
    _universe: mpi::environment::Universe,
}

impl MpiCommunicator {
    /// Initializes MPI. Run under `mpirun` for more than one rank; a process started on its own
    /// is a world of one.
    pub fn init() -> Result<MpiCommunicator, DistError> {
        let universe = mpi::initialize().ok_or_else(|| DistError::Unavailable {
            engine: "mpi",
            why: "MPI was already initialized in this process (an MpiCommunicator can be made once)".into(),
        })?;
        let world = universe.world();
        Ok(MpiCommunicator { world, _universe: universe })
    }

    fn fail(&self, message: String) -> DistError {
        DistError::Engine { engine: "mpi", rank: self.rank(), message }
    }

    /// `op` over the ranks of `x`'s elements of type `T` (`scatter`: then this rank's part).
    fn reduce<T: Element + Equivalence + Default>(
        &self,
        op: CollectiveReduce,
        x: &TensorData,
        scatter: Option<usize>,
    ) -> Result<Vec<T>, DistError> {
        let send: Vec<T> = x.to_vec().ok_or_else(|| self.fail(format!("a {} operand", x.dtype())))?;
        let system = match op {
            CollectiveReduce::Sum | CollectiveReduce::Mean => SystemOperation::sum(),
            CollectiveReduce::Max => SystemOperation::max(),
            CollectiveReduce::Min => SystemOperation::min(),
        };
        let mut recv = vec![T::default(); send.len() / scatter.unwrap_or(1)];
        match scatter {
            None => self.world.all_reduce_into(&send[..], &mut recv[..], system),
            Some(_) => self.world.reduce_scatter_block_into(&send[..], &mut recv[..], system),
        }
        Ok(recv)
    }
}

/// Divides every element by `n` in the element type (the `mean` of a sum over `n` ranks).
fn divide<T: Element>(values: Vec<T>, n: usize, shape: Vec<usize>, dtype: DType) -> TensorData {
    let t = TensorData::from_vec(shape.clone(), &values);
    if dtype.is_float() {
        let scaled: Vec<f64> = t.to_f64_vec().iter().map(|v| v / n as f64).collect();
        TensorData::from_f64(dtype, shape, &scaled)
    } else {
        t
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn world(&self) -> usize {
        self.world.size() as usize
    }

    fn engine(&self) -> &'static str {
        "mpi"
    }

    fn run(&mut self, c: &Collective, x: &TensorData) -> Result<TensorData, DistError> {
        let out = check_collective(self, c, x)?;
        let world = self.world();
        let elem = x.dtype().size_bytes();
        let bytes_result = |bytes: Vec<u8>| {
            TensorData::from_bytes(x.dtype(), out.clone(), Bytes::from(bytes)).map_err(|e| self.fail(e.to_string()))
        };
        match *c {
            Collective::AllReduce { op, .. } | Collective::ReduceScatter { op, .. } => {
                let (scatter, operand) = match *c {
                    Collective::ReduceScatter { axis, .. } => {
                        (Some(world), scatter_operand(x, &out, axis, world).map_err(|e| self.fail(e))?)
                    }
                    _ => (None, x.clone()),
                };
                macro_rules! typed {
                    ($t:ty) => {{
                        let values = self.reduce::<$t>(op, &operand, scatter)?;
                        if op == CollectiveReduce::Mean {
                            divide(values, world, out, x.dtype())
                        } else {
                            TensorData::from_vec(out, &values)
                        }
                    }};
                }
                Ok(match x.dtype() {
                    DType::F32 => typed!(f32),
                    DType::F64 => typed!(f64),
                    DType::I64 => typed!(i64),
                    DType::I32 => typed!(i32),
                    DType::I16 => typed!(i16),
                    DType::I8 => typed!(i8),
                    DType::U64 => typed!(u64),
                    DType::U32 => typed!(u32),
                    DType::U16 => typed!(u16),
                    DType::U8 => typed!(u8),
                    other => {
                        return Err(self.fail(format!(
                        "`{}` reduces f32, f64 and integer tensors, not {other} (cast to f32 around the collective)",
                        c.name()
                    )))
                    }
                })
            }
            Collective::AllGather { axis, .. } => {
                let mut gathered = vec![0u8; x.bytes().len() * world];
                self.world.all_gather_into(&x.bytes()[..], &mut gathered[..]);
                bytes_result(part_major_to_axis(&gathered, world, AxisBlocks::new(x.shape(), axis, elem)))
            }
            Collective::Broadcast { root, .. } => {
                let mut buffer = x.bytes().to_vec();
                self.world.process_at_rank(root as i32).broadcast_into(&mut buffer[..]);
                bytes_result(buffer)
            }
        }
    }

    fn barrier(&mut self) -> Result<(), DistError> {
        self.world.barrier();
        Ok(())
    }

    fn broadcast_bytes(&mut self, root: usize, bytes: &[u8]) -> Result<Vec<u8>, DistError> {
        let mut len = [bytes.len() as u64];
        self.world.process_at_rank(root as i32).broadcast_into(&mut len[..]);
        let mut buffer = if self.rank() == root { bytes.to_vec() } else { vec![0u8; len[0] as usize] };
        self.world.process_at_rank(root as i32).broadcast_into(&mut buffer[..]);
        Ok(buffer)
    }
}
