//! Choosing where and in which precision the networks run: `--device cpu|cuda|cuda:N` and
//! `--dtype f32|bf16|f16`, parsed in this one place for every command.
//!
//! [`DeviceSpec`] is the parsed, not yet opened, device (clap can parse it without touching a
//! GPU); [`DeviceSpec::open`] turns it into a [`candle_core::Device`], and [`parse_device`] does
//! both. Opening `cuda` in a binary built without the `cuda` cargo feature, or on a machine
//! without a usable NVIDIA GPU and driver, is a [`DeviceError`] that says what to do.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

/// Why a device or a dtype could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device string is none of `cpu`, `cuda`, `cuda:N`.
    #[error(
        "unknown device `{0}`: expected `cpu`, `cuda` or `cuda:N` (N = GPU index, 0 is the first)"
    )]
    Syntax(String),
    /// A CUDA device was asked for, but this binary has no CUDA backend.
    #[error(
        "`--device {0}` needs a CUDA build of instructmol, and this binary was built without the \
         `cuda` feature: build one with `bash scripts/build-cuda.sh` (or `cargo build --release \
         --features cuda`), or use `--device cpu`"
    )]
    NotBuilt(DeviceSpec),
    /// The CUDA driver is missing or found no GPU.
    #[error(
        "no usable CUDA device for `--device {spec}`: {reason}; use `--device cpu` on this machine"
    )]
    NoCuda {
        /// The device that was asked for.
        spec: DeviceSpec,
        /// What the driver answered, in words.
        reason: String,
    },
    /// The GPU index is past the last GPU of this machine.
    #[error(
        "`--device {spec}` asks for GPU index {ordinal}, but this machine has {count} CUDA \
         device(s): use an index from 0 to {last}",
        last = count.saturating_sub(1)
    )]
    NoSuchGpu {
        /// The device that was asked for.
        spec: DeviceSpec,
        /// The index asked for.
        ordinal: usize,
        /// How many GPUs the driver reports.
        count: usize,
    },
    /// The GPU exists but could not be set up (out of memory, driver error, ...).
    #[error("cannot open CUDA device `{spec}`: {source}")]
    Open {
        /// The device that was asked for.
        spec: DeviceSpec,
        /// candle's error.
        source: candle_core::Error,
    },
    /// The dtype string is none of `f32`, `bf16`, `f16`.
    #[error("unknown dtype `{0}`: expected `f32`, `bf16` or `f16`")]
    DType(String),
}

/// A device as written on the command line, before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// The CUDA GPU with this index (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => {
                let index = t
                    .strip_prefix("cuda:")
                    .ok_or_else(|| DeviceError::Syntax(s.to_string()))?;
                // Digits only: `usize::from_str` would also take a leading `+`.
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(DeviceError::Syntax(s.to_string()));
                }
                index
                    .parse()
                    .map(Self::Cuda)
                    .map_err(|_| DeviceError::Syntax(s.to_string()))
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device: always succeeds for the CPU; for CUDA, initializes the driver and the
    /// GPU, with a [`DeviceError`] naming the cause when that is impossible.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => open_cuda(self, ordinal),
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(spec: DeviceSpec, _ordinal: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt(spec))
}

#[cfg(feature = "cuda")]
fn open_cuda(spec: DeviceSpec, ordinal: usize) -> Result<Device, DeviceError> {
    use candle_core::cuda_backend::cudarc::driver::{result, sys::CUresult};

    // Ask the driver first, so that "no driver" and "no such GPU" get their own words instead
    // of a raw driver error from deep inside candle.
    let no_cuda = |reason: String| DeviceError::NoCuda { spec, reason };
    if let Err(e) = result::init() {
        let reason = match e.0 {
            CUresult::CUDA_ERROR_NO_DEVICE => "the NVIDIA driver found no CUDA-capable GPU".into(),
            CUresult::CUDA_ERROR_STUB_LIBRARY => {
                "libcuda.so.1 is a stub library: no NVIDIA driver is installed".into()
            }
            CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH => {
                "the NVIDIA kernel module and libcuda.so.1 are different driver versions".into()
            }
            _ => format!("the CUDA driver failed to start ({e:?})"),
        };
        return Err(no_cuda(reason));
    }
    let count = result::device::get_count()
        .map_err(|e| no_cuda(format!("cannot count the GPUs ({e:?})")))?;
    let count = usize::try_from(count).unwrap_or(0);
    if count == 0 {
        return Err(no_cuda(
            "the NVIDIA driver found no CUDA-capable GPU".into(),
        ));
    }
    if ordinal >= count {
        return Err(DeviceError::NoSuchGpu {
            spec,
            ordinal,
            count,
        });
    }
    Device::new_cuda(ordinal).map_err(|source| DeviceError::Open { spec, source })
}

/// Memory of the GPU behind `device` as the driver reports it (`cuMemGetInfo`): `(used,
/// total)` in bytes, where `used = total - free` counts this process's allocations (also
/// those the CUDA allocator keeps cached), its CUDA context, and any other process on the same
/// GPU. None for the CPU or when the driver does not answer. candle keeps no peak-allocation
/// counter, so callers sample this at the points they care about.
#[cfg(feature = "cuda")]
pub fn gpu_memory(device: &Device) -> Option<(u64, u64)> {
    use candle_core::cuda_backend::cudarc::driver::result;
    let Device::Cuda(d) = device else {
        return None;
    };
    d.cuda_stream().context().bind_to_thread().ok()?;
    let (free, total) = result::mem_get_info().ok()?;
    Some(((total.saturating_sub(free)) as u64, total as u64))
}

/// Memory of the GPU behind `device`: always None in a build without CUDA.
#[cfg(not(feature = "cuda"))]
pub fn gpu_memory(_device: &Device) -> Option<(u64, u64)> {
    None
}

/// Parses and opens a device: `cpu`, `cuda` (the first GPU) or `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device, DeviceError> {
    s.parse::<DeviceSpec>()?.open()
}

/// Parses a floating-point precision: `f32`, `bf16` or `f16` (also `float32`, `bfloat16`,
/// `float16`; case-insensitive). Usable as a clap `value_parser`.
pub fn parse_dtype(s: &str) -> Result<DType, DeviceError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "fp32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" | "fp16" => Ok(DType::F16),
        _ => Err(DeviceError::DType(s.to_string())),
    }
}

/// Spins of candle's elementwise worker threads before they sleep, unless the user sets
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT`. candle's default (25,000) keeps a worker spinning through
/// every matmul, which runs on rayon's threads: on a 2-core machine that spinning took about
/// a tenth of a LoRA training step from the matmuls.
const BARRIER_SPIN_LIMIT: &str = "500";

/// `mi_option_purge_delay` in mimalloc 3 (libmimalloc-sys 0.1.49's `mimalloc.h`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Prepares the CPU runtime; call first thing in `main`, before any tensor exists.
///
/// - mimalloc (the binary's global allocator) never hands freed memory back to the OS, unless
///   the user sets `MIMALLOC_PURGE_DELAY` (milliseconds; mimalloc reads it itself). A
///   training step allocates and frees tensors of megabytes many times; glibc's allocator
///   returned them and page-faulted (and zeroed) them in again, which made a CPU LoRA step
///   about 1.4x slower here (scripts/bench/lora_step.py).
/// - candle's thread pools read their settings from the environment when first used.
/// - candle asks for its thread count on every CPU matmul, and without `RAYON_NUM_THREADS`
///   it counts physical cores by reading `/proc/cpuinfo` each time: that read took a quarter
///   of SmolLM2's decode time here (42 -> 57 tok/s once set). It is set once, to the count
///   rayon's own pool uses, unless the user set it.
pub fn init_cpu_runtime() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is a plain store that later frees read.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", BARRIER_SPIN_LIMIT);
    }
}

/// Runs `f` on one of rayon's pool threads (directly when already on one) and waits for it.
///
/// A step calls many small parallel operations. Called from a thread outside the pool, each
/// one hands its work to the pool and waits, woken again at the end: that round trip cost more
/// than the operation saved. Run from inside the pool, the calling thread works on its share
/// (SmolLM2 Q4_1 on 2 threads: decode 97 -> 130 tok/s, prompt 313 -> 365 tok/s). The matrix
/// products and the decoding attention go further and run on [`crate::model::ops::team`],
/// whose threads do not sleep between them.
pub fn on_cpu_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs_parse() {
        for (s, want) in [
            ("cpu", DeviceSpec::Cpu),
            ("CPU", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:0", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
            (" cuda:12 ", DeviceSpec::Cuda(12)),
        ] {
            let got: DeviceSpec = s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(got, want, "{s:?}");
            // Display gives back a string that parses to the same device.
            assert_eq!(got.to_string().parse::<DeviceSpec>().ok(), Some(got));
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn bad_device_specs_name_the_input() {
        for s in [
            "", "gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:+1", "cuda:1:2", "metal", "cuda0",
        ] {
            match s.parse::<DeviceSpec>() {
                Err(e @ DeviceError::Syntax(_)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("`{s}`")), "{msg}");
                    assert!(msg.contains("cuda:N"), "{msg}");
                }
                other => panic!("{s:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn cpu_opens() {
        assert!(matches!(parse_device("cpu"), Ok(Device::Cpu)));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        for s in ["cuda", "cuda:1"] {
            let err = parse_device(s).expect_err("no CUDA backend in this build");
            assert!(matches!(err, DeviceError::NotBuilt(_)), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("scripts/build-cuda.sh"), "{msg}");
            assert!(msg.contains("--device cpu"), "{msg}");
        }
    }

    #[test]
    fn dtypes_parse() {
        for (s, want) in [
            ("f32", DType::F32),
            ("F32", DType::F32),
            ("float32", DType::F32),
            ("bf16", DType::BF16),
            ("bfloat16", DType::BF16),
            ("f16", DType::F16),
            ("fp16", DType::F16),
        ] {
            assert_eq!(parse_dtype(s).ok(), Some(want), "{s:?}");
        }
        for s in ["", "f64", "int8", "bf", "q4_1"] {
            let err = parse_dtype(s).expect_err(s);
            let msg = err.to_string();
            assert!(msg.contains(&format!("`{s}`")), "{msg}");
            assert!(msg.contains("bf16"), "{msg}");
        }
    }
}
