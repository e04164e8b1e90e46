//! Reading the weights of a Hugging Face checkpoint, one shard and one tensor at a time.
//!
//! - safetensors (`model.safetensors`, or shards listed by `model.safetensors.index.json`): the
//!   file is memory-mapped and validated as a whole; tensors are converted in file order, and the
//!   pages of each tensor are given back to the kernel once it is converted, so the peak resident
//!   memory is the converted weights plus about one tensor, not the weights plus the file.
//! - PyTorch (`pytorch_model.bin`, or `pytorch_model-0000k-of-0000N.bin` shards listed by
//!   `pytorch_model.bin.index.json`): zip-format `torch.save` files read with candle's pickle
//!   reader, which interprets the pickle without executing code; each tensor is read from the
//!   zip on its own. Legacy (pre-1.6, non-zip) files are refused with what to do.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::{read_err, LoadError, Result};

/// The checkpoint formats of a Hugging Face directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// safetensors files.
    Safetensors,
    /// zip-format PyTorch pickles (`torch.save`).
    Pytorch,
}

/// The weights files of a directory, in the order transformers prefers them.
pub const LAYOUTS: [(&str, &str, Format); 2] = [
    (
        "model.safetensors",
        "model.safetensors.index.json",
        Format::Safetensors,
    ),
    (
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        Format::Pytorch,
    ),
];

/// Reads every tensor of the checkpoint in `dir` converted to `dtype`; returns the tensors and
/// the file that describes them (the single file or the index), or `None` when the directory
/// holds no checkpoint of a known layout.
pub fn read_dir_weights(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<Option<(HashMap<String, Tensor>, PathBuf)>> {
    for (single, index, format) in LAYOUTS {
        let single = dir.join(single);
        if single.is_file() {
            let mut out = HashMap::new();
            read_file(&single, format, None, dtype, device, &mut out)?;
            return Ok(Some((out, single)));
        }
        let index = dir.join(index);
        if index.is_file() {
            let out = read_sharded(dir, &index, format, dtype, device)?;
            return Ok(Some((out, index)));
        }
    }
    Ok(None)
}

/// Reads the tensors of one file (only those in `only` when given) into `out`.
fn read_file(
    path: &Path,
    format: Format,
    only: Option<&BTreeSet<&str>>,
    dtype: DType,
    device: &Device,
    out: &mut HashMap<String, Tensor>,
) -> Result<()> {
    match format {
        Format::Safetensors => read_safetensors_into(path, only, dtype, device, out),
        Format::Pytorch => read_pytorch_into(path, only, dtype, device, out),
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LoadError::Missing {
                path: path.to_path_buf(),
                expected: "the checkpoint index names this file; restore the missing shard \
                           (or re-save the model)"
                    .to_string(),
            }
        } else {
            read_err(path, e)
        }
    })
}

/// Reads a safetensors file through a memory map, tensor by tensor in file order.
fn read_safetensors_into(
    path: &Path,
    only: Option<&BTreeSet<&str>>,
    dtype: DType,
    device: &Device,
    out: &mut HashMap<String, Tensor>,
) -> Result<()> {
    let file = open(path)?;
    // SAFETY: the map is read-only and private to this function; the file is a checkpoint that
    // nothing is expected to modify while it is read (the same assumption candle and
    // transformers make when they map weights).
    let mmap = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(|e| read_err(path, e))?;
    crate::model::untrusted::check_safetensors_bytes(path, &mmap)?;
    let st = safetensors::SafeTensors::deserialize(&mmap).map_err(|e| {
        read_err(
            path,
            format!(
                "not a valid safetensors file (truncated or corrupt?): {e}; re-download or re-save it"
            ),
        )
    })?;
    let data_start = safetensors::SafeTensors::read_metadata(&mmap)
        .map(|(n, _)| n + 8)
        .map_err(|e| read_err(path, e))?;
    let mut views = st.tensors();
    views.sort_by_key(|(_, v)| v.data().as_ptr() as usize);
    let mut released = 0usize;
    for (name, view) in views {
        if only.is_some_and(|keep| !keep.contains(name.as_str())) {
            continue;
        }
        let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .and_then(|t| t.to_device(device))
            .map_err(|e| read_err(path, format!("tensor `{name}`: {e}")))?;
        out.insert(name, t);
        // Give the pages read so far back to the kernel: they are in the page cache, but no
        // longer count in this process's resident memory.
        let end = view.data().as_ptr() as usize - mmap.as_ptr() as usize + view.data().len();
        let end = end.max(data_start);
        if end > released {
            // SAFETY: MADV_DONTNEED on a read-only shared file mapping only drops the pages from
            // this process; a later read faults them in again with the same file contents.
            let _ = unsafe {
                mmap.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    released,
                    end - released,
                )
            };
            released = end;
        }
    }
    Ok(())
}

/// Reads a zip-format PyTorch checkpoint tensor by tensor.
fn read_pytorch_into(
    path: &Path,
    only: Option<&BTreeSet<&str>>,
    dtype: DType,
    device: &Device,
    out: &mut HashMap<String, Tensor>,
) -> Result<()> {
    let mut magic = [0u8; 4];
    let n = open(path)?
        .read(&mut magic)
        .map_err(|e| read_err(path, e))?;
    if n < 4 || &magic != b"PK\x03\x04" {
        let legacy = n >= 2 && magic[0] == 0x80;
        return Err(read_err(
            path,
            if legacy {
                "a legacy (pre-PyTorch-1.6, non-zip) torch file, which cannot be read without executing \
                 pickle code; re-save it with a recent PyTorch (torch.save(torch.load(f), f)) or convert \
                 the model to safetensors (save_pretrained(dir, safe_serialization=True))"
            } else {
                "not a zip-format PyTorch checkpoint (truncated or corrupt?); re-download it or convert \
                 the model to safetensors"
            },
        ));
    }
    crate::model::untrusted::check_pth(path)?;
    // candle's pickle reader is not hardened against every malformed archive; a panic in it
    // becomes a read error like any other.
    let tensors = std::panic::catch_unwind(|| candle_core::pickle::PthTensors::new(path, None))
        .map_err(|_| read_err(path, "malformed PyTorch archive"))?
        .map_err(|e| {
            read_err(
                path,
                format!(
                    "not a readable PyTorch zip checkpoint (truncated or corrupt?): {e}; re-download it \
                     or convert the model to safetensors"
                ),
            )
        })?;
    let mut infos: Vec<_> = tensors.tensor_infos().values().collect();
    if infos.is_empty() {
        return Err(read_err(
            path,
            "no tensors found (not a state dict saved by torch.save?)",
        ));
    }
    infos.sort_by(|a, b| a.path.cmp(&b.path));
    for info in infos {
        let name = info.name.as_str();
        if only.is_some_and(|keep| !keep.contains(name)) {
            continue;
        }
        let t = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tensors.get(name)))
            .map_err(|_| read_err(path, format!("tensor `{name}`: malformed PyTorch archive")))?
            .map_err(|e| {
                read_err(
                    path,
                    format!("tensor `{name}`: {e} (truncated or corrupt file?)"),
                )
            })?
            .ok_or_else(|| read_err(path, format!("tensor `{name}` vanished from the archive")))?;
        let t = t
            .to_dtype(dtype)
            .and_then(|t| t.to_device(device))
            .map_err(|e| read_err(path, format!("tensor `{name}`: {e}")))?;
        out.insert(name.to_string(), t);
    }
    Ok(())
}

/// Reads a sharded checkpoint described by an index (`weight_map`: tensor name -> shard file).
fn read_sharded(
    dir: &Path,
    index: &Path,
    format: Format,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let text = std::fs::read_to_string(index).map_err(|e| read_err(index, e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        read_err(
            index,
            format!(
                "invalid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| read_err(index, "no `weight_map` object (tensor name -> shard file)"))?;
    let mut by_shard: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| read_err(index, format!("weight_map[`{name}`] is not a file name")))?;
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            return Err(read_err(
                index,
                format!("weight_map[`{name}`] = `{file}` is not a file of this directory"),
            ));
        }
        by_shard.entry(file).or_default().insert(name.as_str());
    }
    let mut shards: Vec<_> = by_shard.into_iter().collect();
    shards.sort();
    let mut out = HashMap::new();
    for (file, names) in &shards {
        let shard = dir.join(file);
        read_file(&shard, format, Some(names), dtype, device, &mut out)?;
        if let Some(absent) = names.iter().find(|n| !out.contains_key(**n)) {
            return Err(LoadError::MissingWeight {
                path: shard,
                key: absent.to_string(),
            });
        }
    }
    Ok(out)
}
