//! A pickle reader that treats the stream as data: enough of the pickle machine to rebuild a
//! PyTorch state dict, with every global checked against an allow-list and nothing executed.
//!
//! Values are reference-counted so that memo lookups are O(1), and every container records its
//! nesting depth, which is capped: a hostile pickle cannot make us allocate more than a small
//! multiple of its own size, recurse deeply, or run anything.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use crate::dtype::Dtype;
use crate::error::{Result, WeightsError};

/// Deepest nesting of containers accepted.
const MAX_DEPTH: u32 = 100;

/// A global that the allow-list admits; anything else is refused when it is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    OrderedDict,
    RebuildTensor,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    /// A typed storage class (`torch.HalfStorage` ...): the element type of a storage.
    Storage(Dtype),
    /// `torch.UntypedStorage`: bytes.
    UntypedStorage,
    /// A dtype object (`torch.float16` ...), as `_rebuild_tensor_v3` receives it.
    DtypeObj(Dtype),
}

impl Global {
    /// Resolves `module.name` against the allow-list.
    pub fn resolve(module: &str, name: &str) -> Option<Global> {
        let storage = |d| Some(Global::Storage(d));
        match (module, name) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_tensor_v3") => Some(Global::RebuildTensorV3),
            ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            ("torch._utils", "_rebuild_parameter_with_state") => Some(Global::RebuildParameterWithState),
            ("torch", "FloatStorage") => storage(Dtype::F32),
            ("torch", "HalfStorage") => storage(Dtype::F16),
            ("torch", "BFloat16Storage") => storage(Dtype::BF16),
            ("torch", "DoubleStorage") => storage(Dtype::F64),
            ("torch", "LongStorage") => storage(Dtype::I64),
            ("torch", "IntStorage") => storage(Dtype::I32),
            ("torch", "ShortStorage") => storage(Dtype::I16),
            ("torch", "CharStorage") => storage(Dtype::I8),
            ("torch", "ByteStorage") => storage(Dtype::U8),
            ("torch", "BoolStorage") => storage(Dtype::Bool),
            ("torch", "UntypedStorage") | ("torch.storage", "UntypedStorage") => Some(Global::UntypedStorage),
            ("torch", "float32") => Some(Global::DtypeObj(Dtype::F32)),
            ("torch", "float16") => Some(Global::DtypeObj(Dtype::F16)),
            ("torch", "bfloat16") => Some(Global::DtypeObj(Dtype::BF16)),
            ("torch", "float64") => Some(Global::DtypeObj(Dtype::F64)),
            ("torch", "int64") => Some(Global::DtypeObj(Dtype::I64)),
            ("torch", "int32") => Some(Global::DtypeObj(Dtype::I32)),
            ("torch", "int16") => Some(Global::DtypeObj(Dtype::I16)),
            ("torch", "int8") => Some(Global::DtypeObj(Dtype::I8)),
            ("torch", "uint8") => Some(Global::DtypeObj(Dtype::U8)),
            ("torch", "bool") => Some(Global::DtypeObj(Dtype::Bool)),
            _ => None,
        }
    }
}

/// A storage named by a persistent id: `('storage', type, key, location, numel)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    pub dtype: Dtype,
    pub key: String,
    /// Elements (of `dtype`) in the storage.
    pub numel: u64,
}

/// A tensor view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub dtype: Dtype,
    /// In elements of `dtype`.
    pub storage_offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// A pickled value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Rc<Vec<Value>>, u32),
    List(Rc<Vec<Value>>, u32),
    /// Key/value pairs in insertion order (duplicates kept; readers decide).
    Dict(Rc<Vec<(Value, Value)>>, u32),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    fn depth(&self) -> u32 {
        match self {
            Value::Tuple(_, d) | Value::List(_, d) | Value::Dict(_, d) => *d,
            _ => 0,
        }
    }
}

enum Item {
    Mark,
    Val(Value),
}

struct Machine<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for errors.
    op_pos: usize,
    stack: Vec<Item>,
    memo: HashMap<u32, Value>,
}

/// Runs the pickle in `data` and returns the value it leaves on STOP.
pub fn load(path: &Path, data: &[u8]) -> Result<Value> {
    let mut m = Machine { path, data, pos: 0, op_pos: 0, stack: Vec::new(), memo: HashMap::new() };
    m.run()
}

fn container_depth<'v>(items: impl IntoIterator<Item = &'v Value>) -> u32 {
    items.into_iter().map(Value::depth).max().unwrap_or(0) + 1
}

impl Machine<'_> {
    fn err(&self, reason: impl Into<String>) -> WeightsError {
        WeightsError::Pickle { path: self.path.into(), offset: self.op_pos as u64, reason: reason.into() }
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(self.err(format!("needs {n} bytes, the stream ends first")));
        };
        let s = self.data.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn line(&mut self) -> Result<String> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err("unterminated text line"));
        };
        let s = String::from_utf8_lossy(rest.get(..n).unwrap_or_default()).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn text(&mut self, n: u64) -> Result<String> {
        let n = usize::try_from(n).map_err(|_| self.err("string length overflows"))?;
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.err("string is not valid UTF-8")),
        }
    }

    fn bytes(&mut self, n: u64) -> Result<Vec<u8>> {
        let n = usize::try_from(n).map_err(|_| self.err("byte string length overflows"))?;
        Ok(self.take(n)?.to_vec())
    }

    fn push(&mut self, v: Value) -> Result<()> {
        if v.depth() > MAX_DEPTH {
            return Err(self.err(format!("containers nested deeper than {MAX_DEPTH}")));
        }
        self.stack.push(Item::Val(v));
        Ok(())
    }

    fn pop(&mut self) -> Result<Value> {
        match self.stack.pop() {
            Some(Item::Val(v)) => Ok(v),
            Some(Item::Mark) => Err(self.err("expected a value, found a MARK")),
            None => Err(self.err("stack underflow")),
        }
    }

    fn top_mut(&mut self) -> Result<&mut Value> {
        match self.stack.last_mut() {
            Some(Item::Val(v)) => Ok(v),
            _ => Err(WeightsError::Pickle {
                path: self.path.into(),
                offset: self.op_pos as u64,
                reason: "expected a value on the stack".into(),
            }),
        }
    }

    /// Pops everything down to the last MARK (removing it).
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let Some(mark) = self.stack.iter().rposition(|i| matches!(i, Item::Mark)) else {
            return Err(self.err("no MARK on the stack"));
        };
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items.into_iter().filter_map(|i| if let Item::Val(v) = i { Some(v) } else { None }).collect())
    }

    fn tuple(&mut self, items: Vec<Value>) -> Result<()> {
        let d = container_depth(&items);
        self.push(Value::Tuple(Rc::new(items), d))
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let v = match self.stack.last() {
            Some(Item::Val(v)) => v.clone(),
            _ => return Err(self.err("memo store with no value on the stack")),
        };
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<()> {
        let Some(v) = self.memo.get(&key).cloned() else {
            return Err(self.err(format!("memo key {key} was never stored")));
        };
        self.push(v)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        match Global::resolve(module, name) {
            Some(g) => self.push(Value::Global(g)),
            None => {
                Err(WeightsError::PickleGlobalRefused { path: self.path.into(), global: format!("{module}.{name}") })
            }
        }
    }

    fn set_items(&mut self, pairs: Vec<Value>) -> Result<()> {
        if !pairs.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with an odd number of items"));
        }
        let path = self.path;
        let op_pos = self.op_pos;
        let target = self.top_mut()?;
        let Value::Dict(entries, depth) = target else {
            return Err(WeightsError::Pickle {
                path: path.into(),
                offset: op_pos as u64,
                reason: "SETITEM(S) on something that is not a dict".into(),
            });
        };
        let mut it = pairs.into_iter();
        let entries = Rc::make_mut(entries);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            *depth = (*depth).max(k.depth() + 1).max(v.depth() + 1);
            entries.push((k, v));
        }
        if *depth > MAX_DEPTH {
            return Err(self.err(format!("containers nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        let path = self.path;
        let op_pos = self.op_pos;
        let target = self.top_mut()?;
        let Value::List(list, depth) = target else {
            return Err(WeightsError::Pickle {
                path: path.into(),
                offset: op_pos as u64,
                reason: "APPEND(S) on something that is not a list".into(),
            });
        };
        *depth = (*depth).max(container_depth(&items));
        Rc::make_mut(list).extend(items);
        if *depth > MAX_DEPTH {
            return Err(self.err(format!("containers nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.err(format!("pickle protocol {proto} is not supported")));
                    }
                }
                0x95 => {
                    // FRAME: a length hint only.
                    self.arr::<8>()?;
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Item::Mark),
                b'0' => {
                    self.stack.pop();
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = match self.stack.last() {
                        Some(Item::Val(v)) => v.clone(),
                        _ => return Err(self.err("DUP with no value")),
                    };
                    self.push(v)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.arr()?);
                    self.push(Value::Int(v.into()))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.arr()?);
                    self.push(Value::Int(v.into()))?;
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { u64::from(self.u8()?) } else { u64::from(u32::from_le_bytes(self.arr()?)) };
                    if n > 8 {
                        return Err(self.err(format!("integer of {n} bytes is too large")));
                    }
                    let bytes = self.bytes(n)?;
                    let mut buf = if bytes.last().is_some_and(|&b| b & 0x80 != 0) { [0xFF; 8] } else { [0; 8] };
                    for (d, s) in buf.iter_mut().zip(&bytes) {
                        *d = *s;
                    }
                    self.push(Value::Int(i64::from_le_bytes(buf)))?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.arr()?);
                    self.push(Value::Float(v))?;
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.arr()?);
                    let s = self.text(n.into())?;
                    self.push(Value::Str(s))?;
                }
                0x8c => {
                    let n = self.u8()?;
                    let s = self.text(n.into())?;
                    self.push(Value::Str(s))?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.arr()?);
                    let s = self.text(n)?;
                    self.push(Value::Str(s))?;
                }
                b'T' | b'U' => {
                    // Python 2 `str`: bytes we show as text.
                    let n = if op == b'U' { u64::from(self.u8()?) } else { u64::from(u32::from_le_bytes(self.arr()?)) };
                    let b = self.bytes(n)?;
                    self.push(Value::Str(String::from_utf8_lossy(&b).into_owned()))?;
                }
                b'C' | b'B' | 0x8e => {
                    let n = match op {
                        b'C' => u64::from(self.u8()?),
                        b'B' => u64::from(u32::from_le_bytes(self.arr()?)),
                        _ => u64::from_le_bytes(self.arr()?),
                    };
                    let b = self.bytes(n)?;
                    self.push(Value::Bytes(b))?;
                }
                b')' => self.push(Value::Tuple(Rc::new(Vec::new()), 1))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.tuple(items)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.tuple(items)?;
                }
                b']' => self.push(Value::List(Rc::new(Vec::new()), 1))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    let d = container_depth(&items);
                    self.push(Value::List(Rc::new(items), d))?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'}' => self.push(Value::Dict(Rc::new(Vec::new()), 1))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Dict(Rc::new(Vec::new()), 1))?;
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.arr()?);
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).map_err(|_| self.err("memo too large"))?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(k.into())?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.arr()?);
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let s = self.persistent(pid)?;
                    self.push(Value::Storage(Rc::new(s)))?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.push(v)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    match (cls, &args) {
                        (Value::Global(Global::OrderedDict), Value::Tuple(a, _)) if a.is_empty() => {
                            self.push(Value::Dict(Rc::new(Vec::new()), 1))?
                        }
                        (cls, _) => return Err(self.err(format!("NEWOBJ of {cls:?} is not supported"))),
                    }
                }
                b'b' => {
                    // BUILD sets state on an object (an OrderedDict's `_metadata`, a
                    // parameter's attributes); the state carries no tensor data, so drop it.
                    self.pop()?;
                    self.top_mut()?;
                }
                _ => return Err(self.err(format!("opcode 0x{op:02x} is not supported"))),
            }
        }
    }

    fn persistent(&self, pid: Value) -> Result<StorageRef> {
        let Value::Tuple(items, _) = pid else {
            return Err(self.err("persistent id is not a tuple"));
        };
        match items.as_slice() {
            [Value::Str(tag), Value::Global(g), Value::Str(key), _location, Value::Int(numel)] if tag == "storage" => {
                let dtype = match g {
                    Global::Storage(d) => *d,
                    Global::UntypedStorage => Dtype::U8,
                    other => return Err(self.err(format!("persistent id names {other:?}, not a storage type"))),
                };
                let numel = u64::try_from(*numel).map_err(|_| self.err("negative storage size"))?;
                Ok(StorageRef { dtype, key: key.clone(), numel })
            }
            _ => Err(self.err("persistent id is not ('storage', type, key, location, numel)")),
        }
    }

    fn reduce(&self, callable: Value, args: Value) -> Result<Value> {
        let Value::Global(g) = callable else {
            return Err(self.err("REDUCE of something that is not an allowed global"));
        };
        let Value::Tuple(args, _) = args else {
            return Err(self.err("REDUCE arguments are not a tuple"));
        };
        match g {
            Global::OrderedDict if args.is_empty() => Ok(Value::Dict(Rc::new(Vec::new()), 1)),
            Global::RebuildTensor | Global::RebuildTensorV2 => match args.as_slice() {
                [storage, offset, size, stride, ..] => self.tensor(storage, offset, size, stride, None),
                _ => Err(self.err("_rebuild_tensor needs (storage, offset, size, stride, ...)")),
            },
            Global::RebuildTensorV3 => match args.as_slice() {
                [storage, offset, size, stride, _grad, _hooks, Value::Global(Global::DtypeObj(d)), ..] => {
                    self.tensor(storage, offset, size, stride, Some(*d))
                }
                _ => Err(self.err("_rebuild_tensor_v3 needs (storage, offset, size, stride, grad, hooks, dtype)")),
            },
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err(self.err("_rebuild_parameter of something that is not a tensor")),
            },
            other => Err(self.err(format!("calling {other:?} with these arguments is not supported"))),
        }
    }

    fn ints(&self, v: &Value, what: &str) -> Result<Vec<u64>> {
        let Value::Tuple(items, _) = v else {
            return Err(self.err(format!("tensor {what} is not a tuple")));
        };
        items
            .iter()
            .map(|i| match i {
                Value::Int(n) if *n >= 0 => Ok(*n as u64),
                _ => Err(self.err(format!("tensor {what} holds something that is not a non-negative integer"))),
            })
            .collect()
    }

    fn tensor(
        &self,
        storage: &Value,
        offset: &Value,
        size: &Value,
        stride: &Value,
        dtype: Option<Dtype>,
    ) -> Result<Value> {
        let Value::Storage(s) = storage else {
            return Err(self.err("tensor storage is not a persistent storage reference"));
        };
        let Value::Int(off) = offset else {
            return Err(self.err("tensor storage offset is not an integer"));
        };
        let storage_offset = u64::try_from(*off).map_err(|_| self.err("negative storage offset"))?;
        let shape = self.ints(size, "size")?;
        let stride = self.ints(stride, "stride")?;
        if shape.len() != stride.len() {
            return Err(self.err("tensor size and stride have different lengths"));
        }
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage: (**s).clone(),
            dtype: dtype.unwrap_or(s.dtype),
            storage_offset,
            shape,
            stride,
        })))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hand-written torch-style state dict pickle with one f16 tensor of shape [2, 3].
    pub(crate) fn state_dict_pickle(global_module: &str, global_name: &str) -> Vec<u8> {
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
        p.push(b'X');
        p.extend_from_slice(&1u32.to_le_bytes());
        p.push(b'w');
        p.extend_from_slice(format!("c{global_module}\n{global_name}\n").as_bytes());
        p.extend_from_slice(
            b"((X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQ",
        );
        p.extend_from_slice(b"K\x00K\x02K\x03\x86K\x03K\x01\x86\x89ccollections\nOrderedDict\n)RtR");
        p.extend_from_slice(b"u.");
        p
    }

    #[test]
    fn rebuilds_a_state_dict() {
        let p = state_dict_pickle("torch._utils", "_rebuild_tensor_v2");
        let v = load(Path::new("p"), &p).unwrap();
        let Value::Dict(entries, _) = v else { panic!("{v:?}") };
        let (k, t) = &entries[0];
        assert_eq!(k, &Value::Str("w".into()));
        let Value::Tensor(t) = t else { panic!("{t:?}") };
        assert_eq!(t.shape, [2, 3]);
        assert_eq!(t.stride, [3, 1]);
        assert_eq!(t.storage.numel, 6);
        assert_eq!(t.dtype, Dtype::F16);
    }

    #[test]
    fn refuses_globals_off_the_list() {
        let p = state_dict_pickle("posix", "system");
        match load(Path::new("p"), &p) {
            Err(WeightsError::PickleGlobalRefused { global, .. }) => assert_eq!(global, "posix.system"),
            other => panic!("{other:?}"),
        }
        // STACK_GLOBAL as well.
        let p = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93.";
        assert!(
            matches!(load(Path::new("p"), p), Err(WeightsError::PickleGlobalRefused { global, .. }) if global == "builtins.eval")
        );
    }

    #[test]
    fn survives_every_truncation_and_deep_nesting() {
        let p = state_dict_pickle("torch._utils", "_rebuild_tensor_v2");
        for cut in 0..p.len() {
            assert!(load(Path::new("p"), &p[..cut]).is_err());
        }
        let mut deep = vec![0x80, 2, b'N'];
        deep.extend(std::iter::repeat_n(0x85u8, 100_000));
        deep.push(b'.');
        assert!(matches!(load(Path::new("p"), &deep), Err(WeightsError::Pickle { .. })));
        // A memo bomb: every BINGET is O(1), so this stays small and fast.
        let mut bomb = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..150 {
            bomb.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        bomb.push(b'.');
        assert!(matches!(load(Path::new("p"), &bomb), Err(WeightsError::Pickle { .. })));
    }
}
