//! Writes named tensors as `torch.save` does (the zip format of PyTorch 1.6 and later), so that
//! `torch.load` in Python, with `weights_only=True`, reads a plain `{name: tensor}` dict.
//!
//! The archive holds `STEM/data.pkl` (a protocol-2 pickle of the dict, where each tensor is
//! `torch._utils._rebuild_tensor_v2` over a persistent storage id), `STEM/byteorder`
//! (`little`), one uncompressed record `STEM/data/K` per tensor (its bytes, 64-byte aligned, as
//! PyTorch aligns them for memory mapping) and `STEM/version` (`3`). Only the pickle opcodes
//! and globals that PyTorch's own writer emits are used.

use std::io::{Seek, Write};
use std::path::Path;

use candle_core::{DType, Tensor};
use safetensors::View;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::{ModelError, Result};

/// The storage class `torch.load` rebuilds a tensor of this dtype with.
fn storage_class(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F32 => "FloatStorage",
        DType::F16 => "HalfStorage",
        DType::BF16 => "BFloat16Storage",
        DType::F64 => "DoubleStorage",
        DType::I64 => "LongStorage",
        DType::U8 => "ByteStorage",
        _ => return None,
    })
}

/// A protocol-2 pickle, written opcode by opcode.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, op: u8) {
        self.0.push(op);
    }
    fn mark(&mut self) {
        self.op(b'(');
    }
    fn string(&mut self, s: &str) {
        self.op(b'X'); // BINUNICODE
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn int(&mut self, v: usize) {
        if let Ok(small) = u8::try_from(v) {
            self.op(b'K'); // BININT1
            self.0.push(small);
        } else if let Ok(mid) = i32::try_from(v) {
            self.op(b'J'); // BININT
            self.0.extend_from_slice(&mid.to_le_bytes());
        } else {
            // LONG1: little-endian two's complement; a usize needs at most 9 bytes.
            let mut bytes = (v as u128).to_le_bytes()[..9].to_vec();
            while bytes.len() > 1 && bytes[bytes.len() - 1] == 0 && bytes[bytes.len() - 2] < 0x80 {
                bytes.pop();
            }
            self.op(0x8a);
            self.0.push(bytes.len() as u8);
            self.0.extend_from_slice(&bytes);
        }
    }
    fn int_tuple(&mut self, values: &[usize]) {
        if values.is_empty() {
            self.op(b')'); // EMPTY_TUPLE
            return;
        }
        self.mark();
        for &v in values {
            self.int(v);
        }
        self.op(b't'); // TUPLE
    }
}

/// Row-major strides of a contiguous tensor of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// The pickle of `{name: tensor}` whose tensor `k` lives in storage record `k`.
fn state_dict_pickle(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut p = Pickle(vec![0x80, 2]); // PROTO 2
    p.op(b'}'); // EMPTY_DICT
    p.mark();
    for (k, (name, t)) in tensors.iter().enumerate() {
        let class = storage_class(t.dtype()).ok_or_else(|| {
            ModelError::Config(format!(
                "tensor `{name}` has dtype {:?}, which this writer does not store",
                t.dtype()
            ))
        })?;
        p.string(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.mark();
        // The persistent id: ("storage", torch.<Class>Storage, key, location, numel).
        p.mark();
        p.string("storage");
        p.global("torch", class);
        p.string(&k.to_string());
        p.string("cpu");
        p.int(t.elem_count());
        p.op(b't');
        p.op(b'Q'); // BINPERSID
        p.int(0); // storage offset
        p.int_tuple(t.dims());
        p.int_tuple(&strides(t.dims()));
        p.op(0x89); // NEWFALSE: requires_grad
        p.global("collections", "OrderedDict"); // backward hooks: an empty OrderedDict
        p.op(b')');
        p.op(b'R'); // REDUCE
        p.op(b't');
        p.op(b'R');
    }
    p.op(b'u'); // SETITEMS
    p.op(b'.'); // STOP
    Ok(p.0)
}

fn write_archive<W: Write + Seek>(
    out: W,
    stem: &str,
    tensors: &[(String, Tensor)],
) -> std::result::Result<W, Box<dyn std::error::Error + Send + Sync>> {
    let mut zip = ZipWriter::new(out);
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .with_alignment(64);
    zip.start_file(format!("{stem}/data.pkl"), stored)?;
    zip.write_all(&state_dict_pickle(tensors)?)?;
    zip.start_file(format!("{stem}/byteorder"), stored)?;
    zip.write_all(b"little")?;
    for (k, (_, t)) in tensors.iter().enumerate() {
        let t = t.contiguous()?;
        let bytes = t.data();
        let options = stored.large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{stem}/data/{k}"), options)?;
        zip.write_all(&bytes)?;
    }
    zip.start_file(format!("{stem}/version"), stored)?;
    zip.write_all(b"3\n")?;
    Ok(zip.finish()?)
}

/// Writes `tensors` (in this order) to `path` as `torch.save(dict)` would. Tensors must be on
/// the CPU; their dtypes are kept (f32, f16, bf16, f64, i64, u8).
pub fn save(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let werr = |reason: String| ModelError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("archive");
    let file = std::fs::File::create(path).map_err(|e| werr(e.to_string()))?;
    let file = write_archive(std::io::BufWriter::new(file), stem, tensors)
        .map_err(|e| werr(e.to_string()))?;
    file.into_inner()
        .map_err(|e| werr(e.to_string()))?
        .sync_all()
        .map_err(|e| werr(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn large_integers_are_long1_little_endian() {
        let mut p = Pickle(Vec::new());
        p.int(3_000_000_000);
        // 3e9 = 0xB2D05E00: needs a fifth byte so that the sign bit stays clear.
        assert_eq!(p.0, vec![0x8a, 5, 0x00, 0x5e, 0xd0, 0xb2, 0x00]);
    }

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
    }

    #[test]
    fn tensors_of_each_dtype_read_back_through_the_checked_pickle_reader() {
        let dev = Device::Cpu;
        let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 2.0).collect();
        let base = Tensor::from_vec(values.clone(), (2, 3, 4), &dev).unwrap();
        let tensors = vec![
            ("a.f32".to_string(), base.clone()),
            ("b.f16".to_string(), base.to_dtype(DType::F16).unwrap()),
            ("c.bf16".to_string(), base.to_dtype(DType::BF16).unwrap()),
            (
                "d.i64".to_string(),
                Tensor::new(&[7i64, -3, 300], &dev).unwrap(),
            ),
            ("e.scalar".to_string(), Tensor::new(1.5f32, &dev).unwrap()),
            // A transposed view is written contiguous.
            (
                "f.t".to_string(),
                base.reshape((6, 4)).unwrap().t().unwrap(),
            ),
        ];
        let path = std::env::temp_dir().join(format!("torch-save-{}.bin", std::process::id()));
        save(&path, &tensors).unwrap();
        let back = crate::model::Weights::load(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(back.len(), tensors.len());
        for (name, t) in &tensors {
            let got = back.get(name).unwrap();
            assert_eq!(got.dims(), t.dims(), "{name}");
            let want: Vec<f32> = t
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn unsupported_dtypes_are_refused() {
        let t = Tensor::zeros(3, DType::U32, &Device::Cpu).unwrap();
        assert!(state_dict_pickle(&[("x".into(), t)]).is_err());
    }
}
