//! The pickle opcode interpreter: a stack machine that builds [`Value`]s and never calls
//! anything outside its allow-list ([`Global`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::torch::{self, DType, Storage, Tensor};

/// Hard limits of one load. The defaults fit the largest official StyleGAN2-ADA snapshots
/// (1024 px FFHQ: about 380 MB) with room to spare.
#[derive(Clone, Debug)]
pub struct Limits {
    /// largest file (or nested payload) read, in bytes
    pub max_file_bytes: u64,
    /// most memo entries
    pub max_memo: usize,
    /// most values on the stack (all marks together)
    pub max_stack: usize,
    /// deepest nesting of payloads (`torch.storage._load_from_bytes` inside a pickle)
    pub max_nesting: usize,
    /// deepest nesting walked when reading values (modules inside modules)
    pub max_depth: usize,
    /// most elements of one tensor
    pub max_tensor_elems: u64,
    /// most elements read out of one network (tensors may share a storage, so this bounds
    /// the memory a small hostile file can ask for)
    pub max_network_elems: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let max_file_bytes = std::env::var("LIMNER_PICKLE_MAX_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(4 << 30);
        Self { max_file_bytes, max_memo: 1 << 22, max_stack: 1 << 20, max_nesting: 1, max_depth: 64, max_tensor_elems: 1 << 31, max_network_elems: 1 << 29 }
    }
}

/// An allow-listed global: the only things a pickle may name. "Calling" one builds data.
#[derive(Clone, Debug, PartialEq)]
pub enum Global {
    /// `torch_utils.persistence._reconstruct_persistent_obj(meta)`: an object saved with its
    /// source code; limner keeps its class name and state and never runs the source
    PersistentObj,
    /// `collections.OrderedDict`
    OrderedDict,
    /// `dnnlib.util.EasyDict` (a dict)
    EasyDict,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter(tensor, requires_grad, hooks)`
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state(tensor, requires_grad, hooks, state)`
    RebuildParameterWithState,
    /// `torch.storage._load_from_bytes(b)`: a storage saved by `torch.save` into bytes
    LoadFromBytes,
    /// `torch.FloatStorage`, `torch.HalfStorage`, ...
    StorageType(DType),
    /// `torch.float32`, ...
    TorchDtype(DType),
    /// `numpy.dtype(kind, align, copy)`
    NumpyDtype,
    /// `numpy.core.multiarray.scalar(dtype, bytes)`
    NumpyScalar,
}

impl Global {
    /// The allow-list. Anything else is refused with its name.
    pub fn lookup(module: &str, name: &str) -> Result<Global> {
        let g = match (module, name) {
            ("torch_utils.persistence", "_reconstruct_persistent_obj") => Global::PersistentObj,
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("dnnlib.util", "EasyDict") | ("dnnlib", "EasyDict") => Global::EasyDict,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
            ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
            ("torch.storage", "_load_from_bytes") => Global::LoadFromBytes,
            ("numpy", "dtype") => Global::NumpyDtype,
            ("numpy.core.multiarray", "scalar") | ("numpy._core.multiarray", "scalar") => Global::NumpyScalar,
            ("torch", n) if DType::from_storage_name(n).is_some() => Global::StorageType(DType::from_storage_name(n).unwrap()),
            ("torch", n) if DType::from_torch_name(n).is_some() => Global::TorchDtype(DType::from_torch_name(n).unwrap()),
            _ => bail!(
                "refused the global `{module}.{name}`: limner never runs code from a pickle, and `{module}.{name}` is not one of the \
                 few names an official StyleGAN2-ADA snapshot uses (persistence objects, OrderedDict, EasyDict, torch tensors, \
                 storages and dtypes, numpy scalars); if this is a network you trust, export its state dict to safetensors in \
                 Python and import that with `limner models import --stylegan2`"
            ),
        };
        Ok(g)
    }
}

/// A persistent object (`torch_utils.persistence`): its class name and its state (the
/// module's `__dict__`). Its `module_src` is dropped unread.
#[derive(Clone, Debug)]
pub struct Object {
    pub class_name: String,
    pub state: Value,
}

/// A value built by the interpreter. Containers are shared (`Rc`), as in Python, so a
/// container filled after it was memoised is seen filled wherever the memo hands it out.
#[derive(Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// an integer wider than 64 bits: little-endian two's complement bytes
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    /// dict, OrderedDict and EasyDict, in insertion order
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Set(Rc<RefCell<Vec<Value>>>),
    Global(Rc<Global>),
    Object(Rc<RefCell<Object>>),
    Storage(Rc<Storage>),
    Tensor(Rc<Tensor>),
    NumpyDtype(Rc<str>),
    /// a storage named by a persistent id, whose bytes come later in a legacy payload
    PendingStorage { key: Rc<str>, dtype: DType, numel: u64 },
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never recurse (a pickle can make cycles): say what it is
        match self {
            Value::None => write!(f, "None"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(b) => write!(f, "<{}-byte int>", b.len()),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{:?}", if s.len() > 80 { &s[..s.floor_char_boundary_compat(80)] } else { s }),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Tuple(t) => write!(f, "<tuple of {}>", t.len()),
            Value::List(l) => write!(f, "<list of {}>", l.borrow().len()),
            Value::Dict(d) => write!(f, "<dict of {}>", d.borrow().len()),
            Value::Set(s) => write!(f, "<set of {}>", s.borrow().len()),
            Value::Global(g) => write!(f, "<{g:?}>"),
            Value::Object(o) => write!(f, "<{} object>", o.borrow().class_name),
            Value::Storage(s) => write!(f, "<{:?} storage of {}>", s.dtype, s.numel()),
            Value::Tensor(t) => write!(f, "<{:?} tensor {:?}>", t.storage.dtype, t.shape),
            Value::NumpyDtype(d) => write!(f, "<numpy dtype {d}>"),
            Value::PendingStorage { key, .. } => write!(f, "<storage {key}>"),
        }
    }
}

/// Dropping a deeply nested value (a pickle can nest a million lists with a few bytes each)
/// must not recurse once per level: containers this value alone owns are emptied onto a
/// heap stack first, so every drop is shallow.
impl Drop for Value {
    fn drop(&mut self) {
        fn drain(v: &mut Value, out: &mut Vec<Value>) {
            match v {
                Value::List(l) | Value::Set(l) => {
                    if Rc::strong_count(l) == 1 {
                        out.append(&mut l.borrow_mut());
                    }
                }
                Value::Dict(d) => {
                    if Rc::strong_count(d) == 1 {
                        for (k, v) in d.borrow_mut().drain(..) {
                            out.push(k);
                            out.push(v);
                        }
                    }
                }
                Value::Tuple(t) => {
                    if let Some(items) = Rc::get_mut(t) {
                        out.extend(items.iter_mut().map(|x| std::mem::replace(x, Value::None)));
                    }
                }
                Value::Object(o) => {
                    if Rc::strong_count(o) == 1 {
                        out.push(std::mem::replace(&mut o.borrow_mut().state, Value::None));
                    }
                }
                _ => {}
            }
        }
        let mut pending = vec![];
        drain(self, &mut pending);
        while let Some(mut v) = pending.pop() {
            drain(&mut v, &mut pending);
            // `v` drops here with its owned containers already emptied
        }
    }
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}
impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    /// The kind, for error messages.
    pub fn kind(&self) -> String {
        format!("{self:?}")
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// An int, or a float with an integral value (numpy scalars in kwargs).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            Value::Bool(b) => Some(*b as i64 as f64),
            _ => None,
        }
    }

    /// The value under a string key of a dict (`None` when it is not a dict or has no such key).
    pub fn get(&self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(d) => d.borrow().iter().rev().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v.clone()),
            _ => None,
        }
    }

    /// A dict's string keys, in order.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Value::Dict(d) => d.borrow().iter().filter_map(|(k, _)| k.as_str().map(String::from)).collect(),
            _ => vec![],
        }
    }

    /// A dict's entries (the values cloned; cheap, they are shared).
    pub fn items(&self) -> Vec<(Value, Value)> {
        match self {
            Value::Dict(d) => d.borrow().clone(),
            _ => vec![],
        }
    }

    /// Items of a tuple, list or set.
    pub fn elements(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.to_vec()),
            Value::List(l) | Value::Set(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }
}

fn new_dict(items: Vec<(Value, Value)>) -> Value {
    Value::Dict(Rc::new(RefCell::new(items)))
}

/// Receives persistent ids (`PERSID`/`BINPERSID`); only torch payloads have them.
pub type PersistentLoad<'a> = dyn FnMut(Value) -> Result<Value> + 'a;

/// One pickle, from its first opcode to `STOP`.
pub struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    /// payload nesting level (0 = the file itself)
    nesting: usize,
    stack: Vec<Value>,
    marks: Vec<Vec<Value>>,
    memo: HashMap<u32, Value>,
    persistent_load: Option<Box<PersistentLoad<'a>>>,
}

impl<'a> Unpickler<'a> {
    pub fn new(data: &'a [u8], limits: &'a Limits, nesting: usize) -> Self {
        Self { data, pos: 0, limits, nesting, stack: vec![], marks: vec![], memo: HashMap::new(), persistent_load: None }
    }

    pub fn with_persistent_load(mut self, f: Box<PersistentLoad<'a>>) -> Self {
        self.persistent_load = Some(f);
        self
    }

    /// Bytes read so far (where the next pickle of a multi-pickle stream starts).
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            bail!(
                "{what} of {n} bytes at byte {} runs past the end of the data ({left} bytes left): the file is truncated or corrupt",
                self.pos
            );
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1, "an argument")?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, "an argument")?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, "an argument")?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, "an argument")?.try_into().unwrap()))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().take(1 << 16).position(|&b| b == b'\n').ok_or_else(|| anyhow!("unterminated text argument at byte {}", self.pos))?;
        let s = std::str::from_utf8(&rest[..n]).with_context(|| format!("text argument at byte {} is not UTF-8", self.pos))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn push(&mut self, v: Value) -> Result<()> {
        let total = self.stack.len() + self.marks.iter().map(Vec::len).sum::<usize>();
        if total >= self.limits.max_stack {
            bail!("the pickle stack grew past {} values (limit): refusing", self.limits.max_stack);
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack.pop().ok_or_else(|| anyhow!("pickle stack underflow at byte {}: corrupt file", self.pos))
    }

    fn top(&self) -> Result<&Value> {
        self.stack.last().ok_or_else(|| anyhow!("pickle stack underflow at byte {}: corrupt file", self.pos))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let prev = self.marks.pop().ok_or_else(|| anyhow!("no MARK before byte {}: corrupt file", self.pos))?;
        Ok(std::mem::replace(&mut self.stack, prev))
    }

    fn memo_put(&mut self, id: u32) -> Result<()> {
        let v = self.top()?.clone();
        if !self.memo.contains_key(&id) && self.memo.len() >= self.limits.max_memo {
            bail!("the pickle memo grew past {} entries (limit): refusing", self.limits.max_memo);
        }
        self.memo.insert(id, v);
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> Result<()> {
        let v = self.memo.get(&id).cloned().ok_or_else(|| anyhow!("memo entry {id} is read before it is written: corrupt file"))?;
        self.push(v)
    }

    fn int_from_le(bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::Int(0);
        }
        if bytes.len() <= 8 {
            let neg = bytes[bytes.len() - 1] & 0x80 != 0;
            let mut b = [if neg { 0xff } else { 0 }; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            return Value::Int(i64::from_le_bytes(b));
        }
        Value::BigInt(Rc::from(bytes))
    }

    fn text_str(b: &[u8]) -> Value {
        match std::str::from_utf8(b) {
            Ok(s) => Value::Str(Rc::from(s)),
            Err(_) => Value::Bytes(Rc::from(b)),
        }
    }

    /// Runs opcodes until `STOP` and returns the value on top of the stack.
    pub fn load(&mut self) -> Result<Value> {
        loop {
            let at = self.pos;
            let op = self.take(1, "an opcode").context("the pickle ends before its STOP opcode: the file is truncated")?[0];
            if at == 0 && op != b'\x80' {
                bail!("not a pickle of protocol 2 to 5 (it does not start with the PROTO opcode but with 0x{op:02x}): limner reads the pickles Python 3 writes");
            }
            match op {
                b'\x80' => {
                    let p = self.u8()?;
                    ensure!(p <= 5, "pickle protocol {p} is newer than 5");
                }
                b'\x95' => {
                    // FRAME: a length hint; the opcodes inside are read as usual
                    let n = self.u64()?;
                    let left = (self.data.len() - self.pos) as u64;
                    ensure!(n <= left, "a frame of {n} bytes at byte {at} runs past the end of the data ({left} bytes left): the file is truncated or corrupt");
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok(v);
                }
                b'(' => {
                    let s = std::mem::take(&mut self.stack);
                    self.marks.push(s);
                    ensure!(self.marks.len() <= self.limits.max_stack, "too many MARKs");
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                b'N' => self.push(Value::None)?,
                b'\x88' => self.push(Value::Bool(true))?,
                b'\x89' => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))?
                }
                b'\x8a' => {
                    let n = self.u8()? as u64;
                    let b = self.take(n, "a LONG1 integer")?;
                    self.push(Self::int_from_le(b))?
                }
                b'\x8b' => {
                    let n = self.u32()? as i32;
                    ensure!(n >= 0, "negative LONG4 length at byte {at}");
                    let b = self.take(n as u64, "a LONG4 integer")?;
                    self.push(Self::int_from_le(b))?
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        _ => Value::Int(l.parse().with_context(|| format!("bad INT `{l}` at byte {at}"))?),
                    };
                    self.push(v)?
                }
                b'L' => {
                    let l = self.line()?;
                    let v: i64 = l.trim_end_matches('L').parse().with_context(|| format!("LONG `{l}` at byte {at} does not fit 64 bits"))?;
                    self.push(Value::Int(v))?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8, "a float")?.try_into().unwrap());
                    self.push(Value::Float(v))?
                }
                b'F' => {
                    let l = self.line()?;
                    self.push(Value::Float(l.parse().with_context(|| format!("bad FLOAT `{l}` at byte {at}"))?))?
                }
                // py2 strings (protocols 0-2): text when UTF-8
                b'T' => {
                    let n = self.u32()? as i32;
                    ensure!(n >= 0, "negative BINSTRING length at byte {at}");
                    let b = self.take(n as u64, "a BINSTRING")?;
                    self.push(Self::text_str(b))?
                }
                b'U' => {
                    let n = self.u8()? as u64;
                    let b = self.take(n, "a SHORT_BINSTRING")?;
                    self.push(Self::text_str(b))?
                }
                b'B' => {
                    let n = self.u32()? as u64;
                    let b = self.take(n, "a BINBYTES")?;
                    self.push(Value::Bytes(Rc::from(b)))?
                }
                b'C' => {
                    let n = self.u8()? as u64;
                    let b = self.take(n, "a SHORT_BINBYTES")?;
                    self.push(Value::Bytes(Rc::from(b)))?
                }
                b'\x8e' | b'\x96' => {
                    let n = self.u64()?;
                    let b = self.take(n, if op == b'\x8e' { "a BINBYTES8" } else { "a BYTEARRAY8" })?;
                    self.push(Value::Bytes(Rc::from(b)))?
                }
                b'X' | b'\x8c' | b'\x8d' => {
                    let n = match op {
                        b'X' => self.u32()? as u64,
                        b'\x8c' => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    let b = self.take(n, "a string")?;
                    let s = std::str::from_utf8(b).with_context(|| format!("string at byte {at} is not UTF-8: corrupt file"))?;
                    self.push(Value::Str(Rc::from(s)))?
                }
                b'V' => {
                    let l = self.line()?;
                    ensure!(!l.contains('\\'), "escaped UNICODE text at byte {at} is not supported");
                    self.push(Value::str(l))?
                }
                b'S' => bail!("protocol-0 STRING at byte {at} is not supported (save with protocol 2 or newer)"),
                b')' => self.push(Value::Tuple(Rc::from(Vec::new())))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(Rc::from(items)))?
                }
                b'\x85' | b'\x86' | b'\x87' => {
                    let n = (op - b'\x84') as usize;
                    ensure!(self.stack.len() >= n, "pickle stack underflow at byte {at}: corrupt file");
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Value::Tuple(Rc::from(items)))?
                }
                b']' => self.push(Value::List(Rc::new(RefCell::new(vec![]))))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(Rc::new(RefCell::new(items))))?
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().push(v),
                        other => bail!("APPEND to {} at byte {at}: corrupt file", other.kind()),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => bail!("APPENDS to {} at byte {at}: corrupt file", other.kind()),
                    }
                }
                b'}' => self.push(new_dict(vec![]))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    ensure!(items.len() % 2 == 0, "DICT with an odd number of items at byte {at}");
                    let pairs = items.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect();
                    self.push(new_dict(pairs))?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => d.borrow_mut().push((k, v)),
                        other => bail!("SETITEM on {} at byte {at}: corrupt file", other.kind()),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    ensure!(items.len() % 2 == 0, "SETITEMS with an odd number of items at byte {at}");
                    match self.top()? {
                        Value::Dict(d) => d.borrow_mut().extend(items.chunks(2).map(|c| (c[0].clone(), c[1].clone()))),
                        other => bail!("SETITEMS on {} at byte {at}: corrupt file", other.kind()),
                    }
                }
                b'\x8f' => self.push(Value::Set(Rc::new(RefCell::new(vec![]))))?,
                b'\x90' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::Set(s) => s.borrow_mut().extend(items),
                        other => bail!("ADDITEMS on {} at byte {at}: corrupt file", other.kind()),
                    }
                }
                b'\x91' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Set(Rc::new(RefCell::new(items))))?
                }
                b'g' => {
                    let id: u32 = self.line()?.parse().with_context(|| format!("bad GET at byte {at}"))?;
                    self.memo_get(id)?
                }
                b'h' => {
                    let id = self.u8()? as u32;
                    self.memo_get(id)?
                }
                b'j' => {
                    let id = self.u32()?;
                    self.memo_get(id)?
                }
                b'p' => {
                    let id: u32 = self.line()?.parse().with_context(|| format!("bad PUT at byte {at}"))?;
                    self.memo_put(id)?
                }
                b'q' => {
                    let id = self.u8()? as u32;
                    self.memo_put(id)?
                }
                b'r' => {
                    let id = self.u32()?;
                    self.memo_put(id)?
                }
                b'\x94' => {
                    let id = self.memo.len() as u32;
                    self.memo_put(id)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = Global::lookup(module, name)?;
                    self.push(Value::Global(Rc::new(g)))?
                }
                b'\x93' => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(m), Some(n)) = (module.as_str(), name.as_str()) else {
                        bail!("STACK_GLOBAL at byte {at} names {} . {}: corrupt file", module.kind(), name.kind())
                    };
                    let g = Global::lookup(m, n)?;
                    self.push(Value::Global(Rc::new(g)))?
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.call(&f, &args).with_context(|| format!("at byte {at}"))?;
                    self.push(v)?
                }
                b'\x81' | b'\x92' => {
                    if op == b'\x92' {
                        let kwargs = self.pop()?;
                        ensure!(matches!(&kwargs, Value::Dict(d) if d.borrow().is_empty()), "NEWOBJ_EX with keyword arguments at byte {at} is not supported");
                    }
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = match &cls {
                        Value::Global(g) if matches!(**g, Global::EasyDict | Global::OrderedDict) => self.call(&cls, &args)?,
                        other => bail!("NEWOBJ of {} at byte {at} is not supported (only dict classes are built this way)", other.kind()),
                    };
                    self.push(v)?
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?.clone();
                    build(&obj, state).with_context(|| format!("BUILD at byte {at}"))?;
                }
                b'P' | b'Q' => {
                    let pid = if op == b'P' { Value::str(self.line()?) } else { self.pop()? };
                    let Some(f) = self.persistent_load.as_mut() else {
                        bail!("a persistent id at byte {at}, outside a torch payload: not supported")
                    };
                    let v = f(pid)?;
                    self.push(v)?
                }
                b'i' | b'o' => bail!("INST/OBJ at byte {at} would instantiate a class: refused (limner never runs code from a pickle)"),
                b'\x82' | b'\x83' | b'\x84' => bail!("EXT opcode at byte {at} (copyreg extension registry): refused"),
                b'\x97' | b'\x98' => bail!("out-of-band buffers (NEXT_BUFFER/READONLY_BUFFER) at byte {at}: not supported"),
                other => bail!("unknown pickle opcode 0x{other:02x} at byte {at}: not a pickle, or corrupt"),
            }
        }
    }

    /// Calls an allow-listed global (REDUCE): builds data, runs nothing.
    fn call(&mut self, f: &Value, args: &Value) -> Result<Value> {
        let Value::Global(g) = f else { bail!("REDUCE calls {}, which is not a function: corrupt or hostile file", f.kind()) };
        let a = args.elements().ok_or_else(|| anyhow!("REDUCE arguments are {}, not a tuple", args.kind()))?;
        let argn = |n: usize| -> Result<()> {
            ensure!(a.len() == n, "{g:?} takes {n} argument(s), the file gives {}", a.len());
            Ok(())
        };
        Ok(match &**g {
            Global::PersistentObj => {
                argn(1)?;
                let meta = &a[0];
                let ty = meta.get("type");
                ensure!(ty.as_ref().and_then(Value::as_str) == Some("class"), "persistent object of type {:?} (expected 'class')", ty);
                let class_name = meta.get("class_name").and_then(|v| v.as_str().map(String::from)).ok_or_else(|| anyhow!("persistent object without a class_name"))?;
                let state = meta.get("state").unwrap_or(Value::None);
                Value::Object(Rc::new(RefCell::new(Object { class_name, state })))
            }
            Global::OrderedDict | Global::EasyDict => match a.as_slice() {
                [] => new_dict(vec![]),
                [Value::Dict(d)] => new_dict(d.borrow().clone()),
                [items] if items.elements().is_some() => {
                    let mut pairs = vec![];
                    for it in items.elements().unwrap() {
                        match it.elements().as_deref() {
                            Some([k, v]) => pairs.push((k.clone(), v.clone())),
                            _ => bail!("{g:?} item is not a pair"),
                        }
                    }
                    new_dict(pairs)
                }
                _ => bail!("{g:?} with arguments {:?}", a),
            },
            Global::RebuildTensorV2 => {
                ensure!((6..=7).contains(&a.len()), "_rebuild_tensor_v2 takes 6 or 7 arguments, the file gives {}", a.len());
                let storage = match &a[0] {
                    Value::Storage(s) => s.clone(),
                    other => bail!("_rebuild_tensor_v2 of {}, not a storage", other.kind()),
                };
                let offset = a[1].as_int().filter(|&o| o >= 0).ok_or_else(|| anyhow!("bad storage offset {:?}", a[1]))? as u64;
                let dims = |v: &Value, what: &str| -> Result<Vec<u64>> {
                    v.elements()
                        .ok_or_else(|| anyhow!("tensor {what} is {}", v.kind()))?
                        .iter()
                        .map(|d| d.as_int().filter(|&x| x >= 0).map(|x| x as u64).ok_or_else(|| anyhow!("bad tensor {what} entry {d:?}")))
                        .collect()
                };
                let shape = dims(&a[2], "size")?;
                let stride = dims(&a[3], "stride")?;
                Value::Tensor(Rc::new(Tensor::new(storage, offset, shape, stride, self.limits)?))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                ensure!(a.len() == 3 || a.len() == 4, "{g:?} takes 3 or 4 arguments, the file gives {}", a.len());
                match &a[0] {
                    Value::Tensor(_) => a[0].clone(),
                    other => bail!("{g:?} of {}, not a tensor", other.kind()),
                }
            }
            Global::LoadFromBytes => {
                argn(1)?;
                let Value::Bytes(b) = &a[0] else { bail!("_load_from_bytes of {}, not bytes", a[0].kind()) };
                ensure!(
                    self.nesting < self.limits.max_nesting,
                    "a torch payload nested {} deep (limit {}): refusing",
                    self.nesting + 1,
                    self.limits.max_nesting
                );
                torch::load_payload(b, self.limits, self.nesting + 1).context("reading a tensor storage (torch.storage._load_from_bytes)")?
            }
            Global::NumpyDtype => {
                ensure!(!a.is_empty(), "numpy.dtype without arguments");
                let kind = a[0].as_str().ok_or_else(|| anyhow!("numpy.dtype of {}", a[0].kind()))?;
                Value::NumpyDtype(Rc::from(kind))
            }
            Global::NumpyScalar => {
                argn(2)?;
                let (Value::NumpyDtype(d), Value::Bytes(b)) = (&a[0], &a[1]) else {
                    bail!("numpy scalar of {} and {}", a[0].kind(), a[1].kind())
                };
                numpy_scalar(d, b)?
            }
            Global::StorageType(_) | Global::TorchDtype(_) => bail!("{g:?} is a type, not a function: corrupt or hostile file"),
        })
    }
}

/// `BUILD`: sets an object's state. Only the shapes these files use are accepted.
fn build(obj: &Value, state: Value) -> Result<()> {
    match (obj, &state) {
        // a dict's attributes (`state_dict()._metadata`), not its items: not needed
        (Value::Dict(_), _) => {}
        (Value::Object(o), _) => o.borrow_mut().state = state,
        (Value::NumpyDtype(_), Value::Tuple(_)) => {} // byte order and flags: numpy's own
        (Value::Tensor(_), _) => {}                   // a parameter's Python attributes
        _ => bail!("setting the state of {} is not supported", obj.kind()),
    }
    Ok(())
}

fn numpy_scalar(dtype: &str, b: &[u8]) -> Result<Value> {
    let arr = |n: usize| -> Result<&[u8]> {
        ensure!(b.len() == n, "numpy {dtype} scalar of {} bytes", b.len());
        Ok(b)
    };
    Ok(match dtype {
        "f8" => Value::Float(f64::from_le_bytes(arr(8)?.try_into().unwrap())),
        "f4" => Value::Float(f32::from_le_bytes(arr(4)?.try_into().unwrap()) as f64),
        "f2" => Value::Float(half::f16::from_le_bytes(arr(2)?.try_into().unwrap()).to_f64()),
        "i8" => Value::Int(i64::from_le_bytes(arr(8)?.try_into().unwrap())),
        "i4" => Value::Int(i32::from_le_bytes(arr(4)?.try_into().unwrap()) as i64),
        "u1" => Value::Int(arr(1)?[0] as i64),
        "b1" => Value::Bool(arr(1)?[0] != 0),
        _ => bail!("numpy scalar of dtype `{dtype}` is not supported"),
    })
}
