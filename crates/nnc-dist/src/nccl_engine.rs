//! The NCCL engine: collectives between NVIDIA GPUs through cudarc's `nccl` module, one rank per
//! GPU. NCCL and the driver are loaded at run time, so this builds everywhere; where either is
//! missing, [`NcclCommunicator::new`] says so instead of failing inside cudarc.
//!
//! Operands are host tensors (what an nnc stage returns): each collective copies the operand to
//! the rank's GPU, runs there and copies the result back. A world of several ranks shares NCCL's
//! unique id through another engine (MPI, [`NcclCommunicator::with_mpi`]), as NCCL's own
//! examples do.

use crate::comm::{check_collective, part_major_to_axis, scatter_operand, AxisBlocks, Communicator};
use crate::DistError;
use bytes::Bytes;
use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, NcclType, ReduceOp};
use nnc_ir::{Collective, CollectiveReduce, DType, Element, TensorData};
use std::sync::Arc;

/// One rank of a world of GPUs.
pub struct NcclCommunicator {
    comm: Comm,
    stream: Arc<CudaStream>,
}

/// Checks that the CUDA driver and the NCCL library can be loaded (cudarc panics if not).
pub fn check_available() -> Result<(), DistError> {
    let unavailable = |why: String| DistError::Unavailable { engine: "nccl", why };
    nnc_cuda::runtime::check_driver().map_err(|e| unavailable(e.to_string()))?;
    // SAFETY: probing for the library runs its initialisers, which have no preconditions.
    if unsafe { cudarc::nccl::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(unavailable(
            "cannot load the NCCL library (libnccl.so.2): install NCCL (for instance PyPI's nvidia-nccl-cu12) \
             and put its lib directory on LD_LIBRARY_PATH"
                .into(),
        ))
    }
}

impl NcclCommunicator {
    /// A world of one rank on GPU `ordinal`.
    pub fn new(ordinal: usize) -> Result<NcclCommunicator, DistError> {
        check_available()?;
        let stream = context(ordinal)?.default_stream();
        let comm = Comm::from_devices(vec![stream.clone()])
            .map_err(|e| engine_err(0, format!("ncclCommInitAll: {e:?}")))?
            .pop()
            .ok_or_else(|| engine_err(0, "ncclCommInitAll made no communicator".into()))?;
        Ok(NcclCommunicator { comm, stream })
    }

    /// Rank `mpi.rank()` of a world of `mpi.world()` GPUs, on GPU `ordinal`: rank 0 makes NCCL's
    /// unique id and MPI broadcasts it.
    #[cfg(feature = "mpi")]
    pub fn with_mpi(mpi: &mut crate::MpiCommunicator, ordinal: usize) -> Result<NcclCommunicator, DistError> {
        check_available()?;
        let (rank, world) = (mpi.rank(), mpi.world());
        let id = if rank == 0 {
            Some(cudarc::nccl::Id::new().map_err(|e| engine_err(rank, format!("ncclGetUniqueId: {e:?}")))?)
        } else {
            None
        };
        let mine: Vec<u8> = id.map(|id| id.internal().iter().map(|&c| c as u8).collect()).unwrap_or_default();
        let shared = mpi.broadcast_bytes(0, &mine)?;
        let mut internal = [0 as std::ffi::c_char; 128];
        for (dst, &src) in internal.iter_mut().zip(&shared) {
            *dst = src as std::ffi::c_char;
        }
        let stream = context(ordinal)?.default_stream();
        let comm = Comm::from_rank(stream.clone(), rank, world, cudarc::nccl::Id::uninit(internal))
            .map_err(|e| engine_err(rank, format!("ncclCommInitRank: {e:?}")))?;
        Ok(NcclCommunicator { comm, stream })
    }

    fn fail(&self, message: String) -> DistError {
        engine_err(self.rank(), message)
    }

    fn to_device<T: Element + cudarc::driver::DeviceRepr>(
        &self,
        x: &TensorData,
    ) -> Result<cudarc::driver::CudaSlice<T>, DistError> {
        let host: Vec<T> = x.to_vec().ok_or_else(|| self.fail(format!("a {} operand", x.dtype())))?;
        self.stream.clone_htod(&host).map_err(|e| self.fail(format!("copy to the GPU: {e:?}")))
    }

    fn to_host<T: Element + cudarc::driver::DeviceRepr + Default>(
        &self,
        y: &cudarc::driver::CudaSlice<T>,
    ) -> Result<Vec<T>, DistError> {
        self.stream.clone_dtoh(y).map_err(|e| self.fail(format!("copy from the GPU: {e:?}")))
    }

    /// `op` over the ranks (`scatter`: this rank's part of it) on elements of type `T`.
    fn reduce<T: Element + NcclType + cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Default>(
        &self,
        op: CollectiveReduce,
        x: &TensorData,
        scatter: bool,
    ) -> Result<Vec<T>, DistError> {
        let send = self.to_device::<T>(x)?;
        let n = if scatter { x.len() / self.world() } else { x.len() };
        let mut recv = self.stream.alloc_zeros::<T>(n).map_err(|e| self.fail(format!("{e:?}")))?;
        let op = match op {
            CollectiveReduce::Sum => ReduceOp::Sum,
            CollectiveReduce::Mean => ReduceOp::Avg,
            CollectiveReduce::Max => ReduceOp::Max,
            CollectiveReduce::Min => ReduceOp::Min,
        };
        let status = if scatter {
            self.comm.reduce_scatter(&send, &mut recv, &op)
        } else {
            self.comm.all_reduce(&send, &mut recv, &op)
        };
        status.map_err(|e| self.fail(format!("{e:?}")))?;
        self.to_host(&recv)
    }

    fn bytes_on_device(&self, bytes: &[u8]) -> Result<cudarc::driver::CudaSlice<u8>, DistError> {
        self.stream.clone_htod(bytes).map_err(|e| self.fail(format!("copy to the GPU: {e:?}")))
    }
}

fn context(ordinal: usize) -> Result<Arc<CudaContext>, DistError> {
    CudaContext::new(ordinal)
        .map_err(|e| DistError::Unavailable { engine: "nccl", why: format!("no usable GPU {ordinal}: {e:?}") })
}

fn engine_err(rank: usize, message: String) -> DistError {
    DistError::Engine { engine: "nccl", rank, message }
}

impl Communicator for NcclCommunicator {
    fn rank(&self) -> usize {
        self.comm.rank()
    }

    fn world(&self) -> usize {
        self.comm.world_size()
    }

    fn engine(&self) -> &'static str {
        "nccl"
    }

    fn run(&mut self, c: &Collective, x: &TensorData) -> Result<TensorData, DistError> {
        let out = check_collective(self, c, x)?;
        let world = self.world();
        let elem = x.dtype().size_bytes();
        let from_bytes = |bytes: Vec<u8>, shape: Vec<usize>| {
            TensorData::from_bytes(x.dtype(), shape, Bytes::from(bytes)).map_err(|e| self.fail(e.to_string()))
        };
        match *c {
            Collective::AllReduce { op, .. } | Collective::ReduceScatter { op, .. } => {
                let scatter = matches!(c, Collective::ReduceScatter { .. });
                let operand = match *c {
                    Collective::ReduceScatter { axis, .. } => {
                        scatter_operand(x, &out, axis, world).map_err(|e| self.fail(e))?
                    }
                    _ => x.clone(),
                };
                macro_rules! typed {
                    ($t:ty) => {
                        TensorData::from_vec(out, &self.reduce::<$t>(op, &operand, scatter)?)
                    };
                }
                Ok(match x.dtype() {
                    DType::F32 => typed!(f32),
                    DType::F64 => typed!(f64),
                    DType::I64 => typed!(i64),
                    DType::I32 => typed!(i32),
                    DType::I8 => typed!(i8),
                    DType::U64 => typed!(u64),
                    DType::U32 => typed!(u32),
                    DType::U8 => typed!(u8),
                    other => {
                        return Err(self.fail(format!(
                            "`{}` reduces f32, f64 and 8/32/64-bit integer tensors, not {other}",
                            c.name()
                        )))
                    }
                })
            }
            Collective::AllGather { axis, .. } => {
                let send = self.bytes_on_device(x.bytes())?;
                let mut recv =
                    self.stream.alloc_zeros::<u8>(x.bytes().len() * world).map_err(|e| self.fail(format!("{e:?}")))?;
                self.comm.all_gather(&send, &mut recv).map_err(|e| self.fail(format!("{e:?}")))?;
                let gathered = self.to_host(&recv)?;
                from_bytes(part_major_to_axis(&gathered, world, AxisBlocks::new(x.shape(), axis, elem)), out)
            }
            Collective::Broadcast { root, .. } => {
                let mut buffer = self.bytes_on_device(x.bytes())?;
                self.comm.broadcast_in_place(&mut buffer, root as i32).map_err(|e| self.fail(format!("{e:?}")))?;
                from_bytes(self.to_host(&buffer)?, out)
            }
        }
    }

    fn barrier(&mut self) -> Result<(), DistError> {
        // An all-reduce of one byte: NCCL has no barrier of its own.
        let one = TensorData::from_vec(vec![1], &[0u8]);
        self.run(&Collective::AllReduce { op: CollectiveReduce::Max, world: self.world() }, &one).map(drop)
    }

    fn broadcast_bytes(&mut self, root: usize, bytes: &[u8]) -> Result<Vec<u8>, DistError> {
        // The length first: the other ranks size their buffers by it.
        let world = self.world();
        let len = TensorData::from_vec(vec![1], &[bytes.len() as u64]);
        let len = self.run(&Collective::Broadcast { root, world }, &len)?.to_vec::<u64>().unwrap_or_default();
        let n = len.first().copied().unwrap_or(0) as usize;
        let mine = if self.rank() == root { bytes.to_vec() } else { vec![0u8; n] };
        let out = self.run(&Collective::Broadcast { root, world }, &TensorData::from_vec(vec![n], &mine))?;
        Ok(out.bytes().to_vec())
    }
}
