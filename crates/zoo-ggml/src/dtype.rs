//! Element types: the dense dtypes of safetensors/PyTorch and the block types of GGML.

use std::fmt;

/// The element type of a tensor.
///
/// Dense types have a fixed element size. [`Dtype::Ggml`] covers GGML's block-quantized types,
/// whose byte size is computed per block of elements (see [`GgmlType::byte_size`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F16,
    BF16,
    F32,
    F64,
    F8E4M3,
    F8E5M2,
    /// A GGML block-quantized type (only from GGUF files).
    Ggml(GgmlType),
}

impl Dtype {
    /// Bytes per element of a dense dtype; `None` for block-quantized GGML types.
    pub fn size(self) -> Option<u64> {
        Some(match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E4M3 | Dtype::F8E5M2 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
            Dtype::Ggml(_) => return None,
        })
    }

    /// The name safetensors uses in its header (`F16`, `BF16`, ...).
    pub fn safetensors_name(self) -> Option<&'static str> {
        Some(match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E5M2 => "F8_E5M2",
            Dtype::Ggml(_) => return None,
        })
    }

    /// Parses a safetensors dtype name.
    pub fn from_safetensors_name(name: &str) -> Option<Dtype> {
        Some(match name {
            "BOOL" => Dtype::Bool,
            "U8" => Dtype::U8,
            "I8" => Dtype::I8,
            "I16" => Dtype::I16,
            "U16" => Dtype::U16,
            "I32" => Dtype::I32,
            "U32" => Dtype::U32,
            "I64" => Dtype::I64,
            "U64" => Dtype::U64,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "F32" => Dtype::F32,
            "F64" => Dtype::F64,
            "F8_E4M3" => Dtype::F8E4M3,
            "F8_E5M2" => Dtype::F8E5M2,
            _ => return None,
        })
    }

    /// Bytes needed for `shape` elements of this type, `None` on overflow or a shape that a
    /// block type cannot hold (first GGML dimension not a multiple of the block).
    pub fn byte_size(self, shape: &[u64]) -> Option<u64> {
        match self {
            Dtype::Ggml(t) => {
                // GGML blocks run along the innermost (last, row-major) dimension.
                let (inner, outer) = shape.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
                let rows = outer.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
                t.byte_size(inner)?.checked_mul(rows)
            }
            _ => numel(shape)?.checked_mul(self.size()?),
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dtype::Ggml(t) => f.write_str(t.name()),
            d => f.write_str(d.safetensors_name().unwrap_or("?")),
        }
    }
}

/// Number of elements of `shape`, `None` on overflow.
pub fn numel(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
}

/// A GGML tensor type as stored in GGUF tensor infos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(u32);

/// (id, name, elements per block, bytes per block), from ggml's `type_traits`.
const GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

impl GgmlType {
    pub const F32: GgmlType = GgmlType(0);
    pub const F16: GgmlType = GgmlType(1);
    pub const Q4_0: GgmlType = GgmlType(2);
    pub const Q4_1: GgmlType = GgmlType(3);
    pub const Q5_0: GgmlType = GgmlType(6);
    pub const Q5_1: GgmlType = GgmlType(7);
    pub const Q8_0: GgmlType = GgmlType(8);
    pub const Q2_K: GgmlType = GgmlType(10);
    pub const Q3_K: GgmlType = GgmlType(11);
    pub const Q4_K: GgmlType = GgmlType(12);
    pub const Q5_K: GgmlType = GgmlType(13);
    pub const Q6_K: GgmlType = GgmlType(14);
    pub const Q8_K: GgmlType = GgmlType(15);
    pub const BF16: GgmlType = GgmlType(30);

    /// The type with this id, if ggml defines it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GGML_TYPES.iter().any(|t| t.0 == id).then_some(GgmlType(id))
    }

    fn row(self) -> (u32, &'static str, u64, u64) {
        GGML_TYPES.iter().copied().find(|t| t.0 == self.0).unwrap_or((self.0, "?", 1, 0))
    }

    /// The numeric id stored in GGUF.
    pub fn id(self) -> u32 {
        self.0
    }

    /// ggml's name (`Q4_0`, `F16`, ...).
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Elements per block.
    pub fn block_size(self) -> u64 {
        self.row().2
    }

    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        self.row().3
    }

    /// Bytes taken by one row of `ne0` elements; `None` if `ne0` is not a whole number of blocks.
    pub fn byte_size(self, ne0: u64) -> Option<u64> {
        let block = self.block_size();
        if block == 0 || !ne0.is_multiple_of(block) {
            return None;
        }
        (ne0 / block).checked_mul(self.type_size())
    }

    /// The dense dtype this GGML type is, if it is not block-quantized.
    pub fn dense(self) -> Option<Dtype> {
        Some(match self.0 {
            0 => Dtype::F32,
            1 => Dtype::F16,
            24 => Dtype::I8,
            25 => Dtype::I16,
            26 => Dtype::I32,
            27 => Dtype::I64,
            28 => Dtype::F64,
            30 => Dtype::BF16,
            _ => return None,
        })
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_ggml() {
        let cases = [
            (GgmlType::Q4_0, 256, 8 * 18),
            (GgmlType::Q4_1, 256, 8 * 20),
            (GgmlType::Q5_0, 64, 2 * 22),
            (GgmlType::Q5_1, 64, 2 * 24),
            (GgmlType::Q8_0, 32, 34),
            (GgmlType::Q2_K, 512, 2 * 84),
            (GgmlType::Q3_K, 256, 110),
            (GgmlType::Q4_K, 256, 144),
            (GgmlType::Q5_K, 256, 176),
            (GgmlType::Q6_K, 256, 210),
            (GgmlType::Q8_K, 256, 292),
            (GgmlType::F16, 3, 6),
            (GgmlType::BF16, 3, 6),
            (GgmlType::F32, 3, 12),
        ];
        for (t, n, bytes) in cases {
            assert_eq!(t.byte_size(n), Some(bytes), "{t}");
        }
        assert_eq!(GgmlType::Q4_0.byte_size(33), None);
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(Dtype::Ggml(GgmlType::Q8_0).byte_size(&[2, 64]), Some(4 * 34));
        assert_eq!(Dtype::F16.byte_size(&[u64::MAX, 2]), None);
    }

    #[test]
    fn safetensors_names_round_trip() {
        for d in [Dtype::Bool, Dtype::U8, Dtype::I64, Dtype::F16, Dtype::BF16, Dtype::F8E5M2] {
            let name = d.safetensors_name().unwrap_or_default();
            assert_eq!(Dtype::from_safetensors_name(name), Some(d));
        }
        assert_eq!(Dtype::from_safetensors_name("F17"), None);
    }
}
