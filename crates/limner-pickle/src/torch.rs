//! PyTorch storages and tensors inside pickles: the payloads `torch.save` writes (the legacy
//! stream of pickles followed by raw storage bytes, and the zip archive), and strided tensor
//! views over them, read as f32.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::rc::Rc;

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::vm::{Global, Limits, Unpickler, Value};

/// Element types of torch storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// `torch.FloatStorage` etc.
    pub fn from_storage_name(n: &str) -> Option<DType> {
        Some(match n {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// `torch.float32` etc.
    pub fn from_torch_name(n: &str) -> Option<DType> {
        Some(match n {
            "float64" | "double" => DType::F64,
            "float32" | "float" => DType::F32,
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "int64" | "long" => DType::I64,
            "int32" | "int" => DType::I32,
            "int16" | "short" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> u64 {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Element `i` of little-endian bytes, as f32.
    fn read(self, b: &[u8], i: usize) -> f32 {
        let s = self.size() as usize;
        let e = &b[i * s..(i + 1) * s];
        match self {
            DType::F64 => f64::from_le_bytes(e.try_into().unwrap()) as f32,
            DType::F32 => f32::from_le_bytes(e.try_into().unwrap()),
            DType::F16 => half::f16::from_le_bytes(e.try_into().unwrap()).to_f32(),
            DType::BF16 => half::bf16::from_le_bytes(e.try_into().unwrap()).to_f32(),
            DType::I64 => i64::from_le_bytes(e.try_into().unwrap()) as f32,
            DType::I32 => i32::from_le_bytes(e.try_into().unwrap()) as f32,
            DType::I16 => i16::from_le_bytes(e.try_into().unwrap()) as f32,
            DType::I8 => e[0] as i8 as f32,
            DType::U8 => e[0] as f32,
            DType::Bool => (e[0] != 0) as u8 as f32,
        }
    }
}

/// A storage: typed, little-endian bytes.
#[derive(Debug)]
pub struct Storage {
    pub dtype: DType,
    pub bytes: Vec<u8>,
}

impl Storage {
    pub fn numel(&self) -> u64 {
        self.bytes.len() as u64 / self.dtype.size()
    }
}

/// A strided view of a storage (`torch._utils._rebuild_tensor_v2`), checked to lie inside it.
#[derive(Debug)]
pub struct Tensor {
    pub storage: Rc<Storage>,
    pub offset: u64,
    pub shape: Vec<usize>,
    pub stride: Vec<u64>,
}

impl Tensor {
    pub fn new(storage: Rc<Storage>, offset: u64, shape: Vec<u64>, stride: Vec<u64>, limits: &Limits) -> Result<Tensor> {
        ensure!(shape.len() == stride.len(), "tensor size {shape:?} and stride {stride:?} differ in length");
        ensure!(shape.len() <= 8, "a tensor of {} dimensions", shape.len());
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| anyhow!("tensor size {shape:?} overflows"))?;
        ensure!(numel <= limits.max_tensor_elems, "a tensor of {numel} elements (limit {})", limits.max_tensor_elems);
        if numel > 0 {
            // the last element the view reaches must be inside the storage
            let last = shape.iter().zip(&stride).try_fold(offset, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?));
            let last = last.ok_or_else(|| anyhow!("tensor view overflows"))?;
            ensure!(
                last < storage.numel(),
                "tensor view (offset {offset}, size {shape:?}, stride {stride:?}) reaches element {last} of a storage of {}",
                storage.numel()
            );
        }
        Ok(Tensor { storage, offset, shape: shape.into_iter().map(|d| d as usize).collect(), stride })
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The elements in row-major order, as f32 (fp16, bf16 and fp64 converted).
    pub fn to_f32(&self) -> Vec<f32> {
        let n = self.numel();
        let mut out = Vec::with_capacity(n);
        let mut idx = vec![0usize; self.shape.len()];
        let (dt, b) = (self.storage.dtype, &self.storage.bytes);
        for _ in 0..n {
            let at = self.offset + idx.iter().zip(&self.stride).map(|(&i, &s)| i as u64 * s).sum::<u64>();
            out.push(dt.read(b, at as usize));
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < self.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        out
    }
}

/// Whether bytes are a zip archive (`torch.save`'s default format since torch 1.6).
pub fn is_zip(b: &[u8]) -> bool {
    b.starts_with(b"PK\x03\x04")
}

/// A `torch.save` payload in bytes (from `torch.storage._load_from_bytes`): a zip archive or
/// the legacy stream. Returns what it holds (a storage, for the payloads pickled tensors use).
pub fn load_payload(b: &[u8], limits: &Limits, nesting: usize) -> Result<Value> {
    ensure!(b.len() as u64 <= limits.max_file_bytes, "a payload of {} bytes (limit {})", b.len(), limits.max_file_bytes);
    if is_zip(b) {
        load_zip(b, limits, nesting)
    } else {
        load_legacy(b, limits, nesting)
    }
}

/// `('storage', torch.XStorage, key, location, numel[, view_metadata])`
fn parse_persistent_id(pid: &Value) -> Result<(DType, Rc<str>, u64)> {
    let t = pid.elements().ok_or_else(|| anyhow!("persistent id {} is not a tuple", pid.kind()))?;
    ensure!(t.len() >= 5 && t[0].as_str() == Some("storage"), "persistent id {:?} is not a torch storage", t.first());
    let dtype = match &t[1] {
        Value::Global(g) => match **g {
            Global::StorageType(d) | Global::TorchDtype(d) => d,
            _ => bail!("persistent id names {:?}, not a storage type", g),
        },
        other => bail!("persistent id names {}, not a storage type", other.kind()),
    };
    let key = match &t[2] {
        Value::Str(s) => s.clone(),
        other => bail!("storage key is {}", other.kind()),
    };
    let numel = t[4].as_int().filter(|&n| n >= 0).ok_or_else(|| anyhow!("bad storage size {:?}", t[4]))? as u64;
    if t.len() > 5 && !matches!(t[5], Value::None) {
        bail!("storage views (view_metadata) are not supported");
    }
    Ok((dtype, key, numel))
}

/// The legacy `torch.save` stream: magic number, protocol version and system info pickles, the
/// object pickle (storages as persistent ids), the list of storage keys, then per key an
/// 8-byte element count and the raw bytes.
fn load_legacy(b: &[u8], limits: &Limits, nesting: usize) -> Result<Value> {
    const MAGIC: u128 = 0x1950a86a20f9469cfc6c;
    let mut pos = 0usize;
    let next = |pos: &mut usize, what: &str| -> Result<Value> {
        let mut u = Unpickler::new(&b[*pos..], limits, nesting);
        let v = u.load().with_context(|| format!("torch payload: {what}"))?;
        *pos += u.position();
        Ok(v)
    };
    let magic = next(&mut pos, "magic number")?;
    let ok = match &magic {
        Value::BigInt(bytes) if bytes.len() <= 16 => {
            let mut a = [0u8; 16];
            a[..bytes.len()].copy_from_slice(bytes);
            u128::from_le_bytes(a) == MAGIC
        }
        _ => false,
    };
    ensure!(ok, "not a torch.save payload (wrong magic number)");
    let proto = next(&mut pos, "protocol version")?;
    ensure!(proto.as_int() == Some(1001), "torch.save legacy protocol {:?} (limner reads 1001)", proto);
    let sys = next(&mut pos, "system info")?;
    ensure!(matches!(sys.get("little_endian"), Some(Value::Bool(true))), "a big-endian torch payload is not supported");
    let pending: Rc<RefCell<Vec<(Rc<str>, DType, u64)>>> = Rc::default();
    let obj = {
        let p = pending.clone();
        let mut u = Unpickler::new(&b[pos..], limits, nesting).with_persistent_load(Box::new(move |pid| {
            let (dtype, key, numel) = parse_persistent_id(&pid)?;
            p.borrow_mut().push((key.clone(), dtype, numel));
            Ok(Value::PendingStorage { key, dtype, numel })
        }));
        let v = u.load().context("torch payload: object")?;
        pos += u.position();
        v
    };
    let keys = next(&mut pos, "storage keys")?;
    let keys = keys.elements().ok_or_else(|| anyhow!("torch payload: storage keys are {}", keys.kind()))?;
    let mut storages: HashMap<Rc<str>, Rc<Storage>> = HashMap::new();
    for k in keys {
        let Value::Str(k) = &k else { bail!("torch payload: storage key {:?}", k) };
        let k = k.clone();
        let dtype = pending.borrow().iter().find(|(key, _, _)| *key == k).map(|p| p.1).ok_or_else(|| anyhow!("torch payload: storage `{k}` is not used"))?;
        ensure!(b.len() - pos >= 8, "torch payload truncated before storage `{k}`");
        let numel = u64::from_le_bytes(b[pos..pos + 8].try_into().unwrap());
        pos += 8;
        let nbytes = numel.checked_mul(dtype.size()).ok_or_else(|| anyhow!("storage `{k}` size overflows"))?;
        let left = (b.len() - pos) as u64;
        ensure!(nbytes <= left, "storage `{k}` says {numel} elements ({nbytes} bytes) but only {left} bytes remain: truncated or corrupt");
        storages.insert(k.clone(), Rc::new(Storage { dtype, bytes: b[pos..pos + nbytes as usize].to_vec() }));
        pos += nbytes as usize;
    }
    resolve_pending(obj, &storages)
}

fn resolve_pending(v: Value, storages: &HashMap<Rc<str>, Rc<Storage>>) -> Result<Value> {
    match &v {
        Value::PendingStorage { key, numel, dtype } => {
            let (numel, dtype) = (*numel, *dtype);
            let s = storages.get(key).ok_or_else(|| anyhow!("storage `{key}` has no data in the payload"))?;
            ensure!(s.dtype == dtype && s.numel() >= numel, "storage `{key}`: {numel} {dtype:?} elements named, {} stored", s.numel());
            Ok(Value::Storage(s.clone()))
        }
        Value::Storage(_) | Value::Tensor(_) => Ok(v.clone()),
        other => bail!("a torch payload holding {} (limner reads storages and tensors)", other.kind()),
    }
}

/// A `torch.save` zip archive: `<name>/data.pkl` with storages as persistent ids whose bytes
/// are `<name>/data/<key>`.
pub fn load_zip(b: &[u8], limits: &Limits, nesting: usize) -> Result<Value> {
    let z = zip::ZipArchive::new(Cursor::new(b)).context("not a readable zip archive")?;
    let pkl = z.file_names().find(|n| n.ends_with("data.pkl")).map(String::from).ok_or_else(|| anyhow!("zip archive without data.pkl: not a torch.save file"))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let z = RefCell::new(z);
    let read = |name: &str| -> Result<Vec<u8>> {
        let mut z = z.borrow_mut();
        let f = z.by_name(name).with_context(|| format!("the archive has no `{name}`"))?;
        ensure!(f.size() <= limits.max_file_bytes, "`{name}` is {} bytes (limit {})", f.size(), limits.max_file_bytes);
        let mut v = Vec::with_capacity(f.size() as usize);
        f.take(limits.max_file_bytes).read_to_end(&mut v).with_context(|| format!("cannot read `{name}` from the archive"))?;
        Ok(v)
    };
    let data = read(&pkl)?;
    let mut storages: HashMap<Rc<str>, Rc<Storage>> = HashMap::new();
    let mut u = Unpickler::new(&data, limits, nesting).with_persistent_load(Box::new(|pid| {
        let (dtype, key, numel) = parse_persistent_id(&pid)?;
        if let Some(s) = storages.get(&key) {
            ensure!(s.dtype == dtype, "storage `{key}` is read as two types");
            return Ok(Value::Storage(s.clone()));
        }
        let bytes = read(&format!("{prefix}data/{key}"))?;
        let need = numel.checked_mul(dtype.size()).ok_or_else(|| anyhow!("storage `{key}` size overflows"))?;
        ensure!(bytes.len() as u64 >= need, "storage `{key}`: {need} bytes named, {} stored", bytes.len());
        let s = Rc::new(Storage { dtype, bytes });
        storages.insert(key, s.clone());
        Ok(Value::Storage(s))
    }));
    u.load().context("data.pkl")
}
