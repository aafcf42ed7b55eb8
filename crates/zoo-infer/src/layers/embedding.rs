//! Token embeddings: rows of a table in any weight form the runner holds, as f32.

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::weights::MatrixWeight;

/// Token embeddings: a dense table or quantized rows dequantized on lookup.
#[derive(Debug, Clone)]
pub struct Embedding {
    table: MatrixWeight,
    hidden: usize,
}

impl Embedding {
    pub fn new(table: MatrixWeight, hidden: usize) -> Embedding {
        Embedding { table, hidden }
    }

    pub fn table(&self) -> &MatrixWeight {
        &self.table
    }

    /// The row of `id` (already checked against the vocabulary) into `dst` (hidden).
    pub fn row_into(&self, id: u32, dst: &mut [f32]) -> Result<()> {
        match &self.table {
            MatrixWeight::Dense(w) => dst.copy_from_slice(&w.get(id as usize)?.to_vec1::<f32>()?),
            MatrixWeight::Split(w) => w.row_into(id as usize, dst),
            MatrixWeight::Coded(w) => w.row_into(id as usize, dst),
            MatrixWeight::Half(h) => {
                let row_bytes = 2 * h.cols;
                let start = id as usize * row_bytes;
                let src = h.bytes.get(start..start + row_bytes).unwrap_or_default();
                zoo_kernels::dense16::widen(h.kind, zoo_kernels::Backend::detect(), src, dst);
            }
            MatrixWeight::Quant(q) => q.dequantize_row(id as usize, dst)?,
        }
        Ok(())
    }

    /// (t, hidden) for `ids` (all already checked against the vocabulary).
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        match &self.table {
            MatrixWeight::Dense(w) => {
                let idx = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
                Ok(w.index_select(&idx, 0)?)
            }
            MatrixWeight::Half(h) => {
                let row_bytes = 2 * h.cols;
                let mut out = vec![0f32; ids.len() * self.hidden];
                for (dst, &id) in out.chunks_exact_mut(self.hidden).zip(ids) {
                    let start = id as usize * row_bytes;
                    let src = h.bytes.get(start..start + row_bytes).unwrap_or_default();
                    zoo_kernels::dense16::widen(h.kind, zoo_kernels::Backend::detect(), src, dst);
                }
                Ok(Tensor::from_vec(out, (ids.len(), self.hidden), &Device::Cpu)?)
            }
            MatrixWeight::Split(_) | MatrixWeight::Coded(_) => {
                let mut out = vec![0f32; ids.len() * self.hidden];
                for (dst, &id) in out.chunks_exact_mut(self.hidden).zip(ids) {
                    self.row_into(id, dst)?;
                }
                Ok(Tensor::from_vec(out, (ids.len(), self.hidden), &Device::Cpu)?)
            }
            MatrixWeight::Quant(q) => {
                let mut out = vec![0f32; ids.len() * self.hidden];
                for (dst, &id) in out.chunks_exact_mut(self.hidden).zip(ids) {
                    q.dequantize_row(id as usize, dst)?;
                }
                Ok(Tensor::from_vec(out, (ids.len(), self.hidden), &Device::Cpu)?)
            }
        }
    }
}
