//! The gradient all-reduce of data-parallel training over NCCL (cargo feature `nccl`): one
//! communicator per process and GPU, summing f32 tensors across the ranks on candle's own CUDA
//! stream. A building block only: the trainer and the CLI do not use it yet (the design, and
//! what changes in the trainer, are in docs/DISTRIBUTED.md). It has never run: NCCL needs one
//! GPU per rank, and no machine here has two.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::{CpuStorage, CudaStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

/// Why a communicator could not be made or a collective failed.
#[derive(Debug, thiserror::Error)]
pub enum NcclError {
    /// NCCL itself refused (its result code).
    #[error("NCCL: {0}")]
    Nccl(String),
    /// The rank is not below the world size, or the world is empty.
    #[error("rank {rank} of a world of {world}: need 0 <= rank < world")]
    Rank {
        /// The rank asked for.
        rank: usize,
        /// The number of ranks.
        world: usize,
    },
    /// The tensor or device is not one NCCL can work on here.
    #[error("{0}")]
    Input(String),
    /// candle failed around the collective.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, NcclError>;

/// The rendezvous token of a run: rank 0 makes it ([`unique_id`]) and hands the same bytes
/// to every rank (a file in the run directory on one machine).
pub type UniqueId = [u8; 128];

/// A new NCCL unique id (on rank 0).
pub fn unique_id() -> Result<UniqueId> {
    let id = Id::new().map_err(|e| NcclError::Nccl(format!("{e:?}")))?;
    let mut out = [0u8; 128];
    for (o, &c) in out.iter_mut().zip(id.internal().iter()) {
        *o = c as u8;
    }
    Ok(out)
}

/// One rank's communicator, bound to a GPU and to candle's stream on it, so that a collective
/// runs after the kernels that produced its input, in stream order.
pub struct Communicator {
    comm: Comm,
    rank: usize,
    world: usize,
}

impl Communicator {
    /// Joins the run of `world` ranks as `rank` on the CUDA `device` (blocks until every rank
    /// has joined with the same `id`).
    pub fn new(device: &Device, rank: usize, world: usize, id: &UniqueId) -> Result<Self> {
        if world == 0 || rank >= world {
            return Err(NcclError::Rank { rank, world });
        }
        let Device::Cuda(dev) = device else {
            return Err(NcclError::Input(format!(
                "NCCL needs a CUDA device, not {device:?}"
            )));
        };
        let mut internal = [0 as std::ffi::c_char; 128];
        for (i, &b) in internal.iter_mut().zip(id.iter()) {
            *i = b as std::ffi::c_char;
        }
        let comm = Comm::from_rank(dev.cuda_stream(), rank, world, Id::uninit(internal))
            .map_err(|e| NcclError::Nccl(format!("{e:?}")))?;
        Ok(Self { comm, rank, world })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.world
    }

    /// The element-wise sum of `t` over all ranks (f32 on this communicator's GPU; every rank
    /// calls it with the same shape, in the same order). No gradient flows through it.
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<Tensor> {
        if t.dtype() != DType::F32 {
            return Err(NcclError::Input(format!(
                "the all-reduce takes f32 tensors, not {:?}",
                t.dtype()
            )));
        }
        let op = AllReduce { comm: &self.comm };
        Ok(t.detach().contiguous()?.apply_op1_no_bwd(&op)?)
    }
}

/// The all-reduce as a candle op: a new tensor holding the sum.
struct AllReduce<'a> {
    comm: &'a Comm,
}

// SAFETY: an NCCL communicator may be used from any thread as long as no two calls on it run
// at the same time; candle runs an op's forward pass on the calling thread, and the trainer
// issues its collectives from one thread, in order (docs/DISTRIBUTED.md).
unsafe impl Send for AllReduce<'_> {}
// SAFETY: as for Send: calls on the communicator are never concurrent.
unsafe impl Sync for AllReduce<'_> {}

impl CustomOp1 for AllReduce<'_> {
    fn name(&self) -> &'static str {
        "nccl-all-reduce"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("the NCCL all-reduce runs on a CUDA device, not on the CPU")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (start, end) = l
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("nccl: the input must be contiguous".into()))?;
        let src = s.as_cuda_slice::<f32>()?.slice(start..end);
        let dev = s.device().clone();
        let mut dst = dev.alloc_zeros::<f32>(end - start)?;
        self.comm
            .all_reduce(&src, &mut dst, &ReduceOp::Sum)
            .map_err(|e| candle_core::Error::Msg(format!("NCCL all-reduce: {e:?}")))?;
        Ok((CudaStorage::wrap_cuda_slice(dst, dev), l.shape().clone()))
    }
}
