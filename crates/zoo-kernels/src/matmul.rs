//! The matrix product driver: checks shapes, quantizes the activations once per call into a
//! reused per-thread buffer, splits the weight rows into a few contiguous chunks per thread,
//! and runs the chosen backend's kernel on each chunk.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::Range;
use std::thread::LocalKey;

use crate::act::{self, BlockQ8, BlockQ8K};
use crate::{Backend, KernelError, Layout, QMatrix, QuantType, ThreadPool, packed, scalar};

thread_local! {
    /// Quantized activations of the current call; kept so decode steps do not allocate.
    static SCRATCH_Q8: RefCell<Vec<BlockQ8>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_Q8K: RefCell<Vec<BlockQ8K>> = const { RefCell::new(Vec::new()) };
    /// One packed group unpacked to rows (the portable path over packed weights).
    static SCRATCH_GROUP: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Fewest weight rows worth a task of their own.
const MIN_ROWS_PER_TASK: usize = 64;
/// Tasks per thread for big matrices: a few, so a thread slowed by a neighbour's process does
/// not hold everyone up, while each task still streams long contiguous runs of weights.
const TASKS_PER_THREAD: usize = 4;
/// Weight bytes per cache sub-band of a task's rows (see `Job::blocked`).
const SUBBAND_BYTES: usize = 48 * 1024;
/// Activation bytes per cache chunk of a prompt's rows (see `Job::blocked`).
const ACT_CHUNK_BYTES: usize = 160 * 1024;
/// Activation values below which quantizing them is not worth waking the pool.
const PARALLEL_QUANT_MIN: usize = 1 << 15;

/// `out[i][j] = dot(row j of w, row i of x)` for the `m` rows of `x` (each `w.cols` values),
/// on the fastest backend this CPU has. `out` holds `m` rows of `w.rows` values.
pub fn matmul(pool: &ThreadPool, w: &QMatrix, x: &[f32], m: usize, out: &mut [f32]) -> Result<(), KernelError> {
    matmul_with(pool, w, x, m, out, Backend::detect())
}

/// [`matmul`] on a given backend (one the CPU lacks falls back to [`Backend::Scalar`]).
pub fn matmul_with(
    pool: &ThreadPool,
    w: &QMatrix,
    x: &[f32],
    m: usize,
    out: &mut [f32],
    backend: Backend,
) -> Result<(), KernelError> {
    w.validate()?;
    let (n, k) = (w.rows, w.cols);
    let x_len = m.checked_mul(k).ok_or(KernelError::Overflow)?;
    if x.len() != x_len {
        return Err(KernelError::InputLength { expected: x_len, got: x.len() });
    }
    let out_len = m.checked_mul(n).ok_or(KernelError::Overflow)?;
    if out.len() != out_len {
        return Err(KernelError::OutputLength { expected: out_len, got: out.len() });
    }
    if out_len == 0 {
        return Ok(());
    }
    let nb = k / w.qtype.block_size();
    if nb == 0 {
        out.fill(0.0);
        return Ok(());
    }
    let backend = if backend.is_available() { backend } else { Backend::Scalar };
    let job = Job { w, m, n, nb, backend };
    match w.qtype {
        QuantType::Q4K | QuantType::Q5K | QuantType::Q6K => {
            with_scratch(&SCRATCH_Q8K, m * nb, BlockQ8K::ZERO, |acts| {
                quantize_rows(pool, x, k, acts, nb, act::quantize_q8k);
                job.run(pool, out, |rows, o| job.k_rows(acts, rows, o));
            })
        }
        _ => with_scratch(&SCRATCH_Q8, m * nb, BlockQ8::ZERO, |acts| {
            quantize_rows(pool, x, k, acts, nb, act::quantize_q8);
            job.run(pool, out, |rows, o| job.legacy_rows(acts, rows, o));
        }),
    }
    Ok(())
}

/// Shapes of one call, checked.
struct Job<'a, 'b> {
    w: &'a QMatrix<'b>,
    m: usize,
    n: usize,
    nb: usize,
    backend: Backend,
}

impl Job<'_, '_> {
    /// Weight rows a task's range must be a multiple of: a register tile, a packed group, or
    /// two for the 512-bit prompt kernels' bands (an odd group at a task's end would go
    /// through the 256-bit ones).
    fn tile_rows(&self) -> usize {
        match self.w.layout {
            Layout::Rows => 4,
            Layout::Packed8 if self.wide_applies() => 2 * packed::GROUP,
            Layout::Packed8 => packed::GROUP,
        }
    }

    /// Whether a packed matrix's product goes through `packed::wide` (AVX512-VNNI, a prompt).
    fn wide_applies(&self) -> bool {
        cfg!(target_arch = "x86_64")
            && self.w.layout == Layout::Packed8
            && self.backend == Backend::Vnni512
            && self.m >= packed::WIDE_MIN_ROWS
    }

    /// The rows of a packed matrix: the SIMD kernels, or (portable path) each group unpacked
    /// into a scratch buffer and multiplied by `dot` row by row.
    fn packed_block<A>(
        &self,
        acts: &[A],
        tagged: packed::Acts<'_>,
        m: usize,
        rows: Range<usize>,
        out: &Disjoint<'_, f32>,
        dot: fn(QuantType, &[u8], &[A]) -> f32,
    ) {
        let (t, nb, n) = (self.w.qtype, self.nb, self.n);
        #[cfg(target_arch = "x86_64")]
        if self.backend.is_x86()
            && packed::avx2::groups(self.backend, t, self.w.data, tagged, m, nb, rows.clone(), n, out)
        {
            return;
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = tagged;
        let row_bytes = nb * t.type_size();
        let group_bytes = packed::packed_len(t, packed::GROUP, self.w.cols).unwrap_or(0);
        with_scratch(&SCRATCH_GROUP, packed::GROUP * row_bytes, 0u8, |plain| {
            for g in rows.start / packed::GROUP..rows.end.div_ceil(packed::GROUP) {
                let Some(src) = self.w.data.get(g * group_bytes..(g + 1) * group_bytes) else { return };
                packed::unpack_group(t, src, plain);
                for (j, wrow) in plain.chunks_exact(row_bytes.max(1)).enumerate() {
                    let r = g * packed::GROUP + j;
                    for (i, a) in acts.chunks_exact(nb).take(m).enumerate() {
                        // SAFETY: this task owns column `r` of every output row.
                        unsafe { out.set(i * n + r, dot(t, wrow, a)) };
                    }
                }
            }
        });
    }

    /// Splits the weight rows into contiguous chunks and runs `f` on each, in parallel.
    fn run(&self, pool: &ThreadPool, out: &mut [f32], f: impl Fn(Range<usize>, &Disjoint<'_, f32>) + Sync) {
        let threads = pool.threads();
        let per_thread = (self.n / (threads * MIN_ROWS_PER_TASK)).clamp(1, TASKS_PER_THREAD);
        let tasks = (threads * per_thread).min(self.n.div_ceil(4)).max(1);
        // Chunks are multiples of 4 rows (8 packed) so every chunk is whole register tiles.
        let chunk = self.n.div_ceil(tasks).next_multiple_of(self.tile_rows());
        let tasks = self.n.div_ceil(chunk);
        let out = Disjoint::new(out);
        pool.run(tasks, &|t| {
            let start = (t * chunk).min(self.n);
            let end = (start + chunk).min(self.n);
            f(start..end, &out);
        });
    }

    /// Runs `kernel(acts of rows i0.., m', weight rows, out from row i0)` over cache blocks of
    /// one task's rows: sub-bands of about [`SUBBAND_BYTES`] of weights against chunks of about
    /// [`ACT_CHUNK_BYTES`] of activations, so that both stay in L2 while a sub-band meets every
    /// chunk (without blocking, a prompt's activations, 640 KB at k = 4096 and m = 128, stream
    /// from L3 once per 4 weight rows). One activation row (decode) is one chunk.
    fn blocked<A>(
        &self,
        acts: &[A],
        rows: Range<usize>,
        out: &Disjoint<'_, f32>,
        kernel: impl Fn(&[A], usize, Range<usize>, &Disjoint<'_, f32>),
    ) {
        let row_bytes = self.nb * self.w.qtype.type_size();
        let act_bytes = self.nb * std::mem::size_of::<A>();
        let sub = (SUBBAND_BYTES / row_bytes.max(1)).max(4).next_multiple_of(self.tile_rows());
        let chunk = if self.m <= 8 { self.m } else { (ACT_CHUNK_BYTES / act_bytes.max(1)).clamp(8, self.m) / 8 * 8 };
        // One chunk: nothing to keep in cache across chunks, so no sub-bands either.
        let sub = if chunk >= self.m { rows.len().max(1) } else { sub };
        let mut r = rows.start;
        while r < rows.end {
            let re = (r + sub).min(rows.end);
            let mut i0 = 0;
            while i0 < self.m {
                let mc = chunk.min(self.m - i0);
                let a = acts.get(i0 * self.nb..(i0 + mc) * self.nb).unwrap_or_default();
                // SAFETY: the view covers output rows `i0..i0 + mc`; this task still writes only
                // its own weight rows' columns.
                let o = unsafe { out.view(i0 * self.n, mc * self.n) };
                kernel(a, mc, r..re, &o);
                i0 += mc;
            }
            r = re;
        }
    }

    /// A prompt's rows of a packed matrix through the 512-bit kernels (`packed::wide`), where
    /// the CPU has AVX512-VNNI and the backend is that one; false if not taken.
    fn wide(&self, acts: packed::Acts<'_>, rows: Range<usize>, out: &Disjoint<'_, f32>) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.wide_applies()
                && packed::wide::rows(
                    packed::amx::available(),
                    self.w.qtype,
                    self.w.data,
                    acts,
                    self.m,
                    self.nb,
                    rows,
                    self.n,
                    out,
                )
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (acts, rows, out);
            false
        }
    }

    fn legacy_rows(&self, acts: &[BlockQ8], rows: Range<usize>, out: &Disjoint<'_, f32>) {
        if self.wide(packed::Acts::Q8(acts), rows.clone(), out) {
            return;
        }
        self.blocked(acts, rows, out, |a, m, rows, o| self.legacy_block(a, m, rows, o));
    }

    fn k_rows(&self, acts: &[BlockQ8K], rows: Range<usize>, out: &Disjoint<'_, f32>) {
        if self.wide(packed::Acts::Q8K(acts), rows.clone(), out) {
            return;
        }
        self.blocked(acts, rows, out, |a, m, rows, o| self.k_block(a, m, rows, o));
    }

    fn legacy_block(&self, acts: &[BlockQ8], m: usize, rows: Range<usize>, out: &Disjoint<'_, f32>) {
        let t = self.w.qtype;
        if self.w.layout == Layout::Packed8 {
            return self.packed_block(acts, packed::Acts::Q8(acts), m, rows, out, scalar::dot_legacy);
        }
        #[cfg(target_arch = "x86_64")]
        if self.backend.is_x86()
            && crate::avx2::legacy_rows(self.backend, t, self.w.data, acts, m, self.nb, rows.clone(), self.n, out)
        {
            return;
        }
        for r in rows {
            let Some(wrow) = self.w.row(r) else { return };
            for (i, a) in acts.chunks_exact(self.nb).take(m).enumerate() {
                // SAFETY: this task owns column `r` of every output row.
                unsafe { out.set(i * self.n + r, scalar::dot_legacy(t, wrow, a)) };
            }
        }
    }

    fn k_block(&self, acts: &[BlockQ8K], m: usize, rows: Range<usize>, out: &Disjoint<'_, f32>) {
        let t = self.w.qtype;
        if self.w.layout == Layout::Packed8 {
            return self.packed_block(acts, packed::Acts::Q8K(acts), m, rows, out, scalar::dot_k);
        }
        #[cfg(target_arch = "x86_64")]
        if self.backend.is_x86() && crate::avx2::k_rows(t, self.w.data, acts, m, self.nb, rows.clone(), self.n, out) {
            return;
        }
        for r in rows {
            let Some(wrow) = self.w.row(r) else { return };
            for (i, a) in acts.chunks_exact(self.nb).take(m).enumerate() {
                // SAFETY: this task owns column `r` of every output row.
                unsafe { out.set(i * self.n + r, scalar::dot_k(t, wrow, a)) };
            }
        }
    }
}

/// Runs `f` on this thread's scratch buffer resized to `len` (a fresh one if it is in use).
pub(crate) fn with_scratch<T: Copy, R>(
    key: &'static LocalKey<RefCell<Vec<T>>>,
    len: usize,
    zero: T,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            v.resize(len, zero);
            f(v.as_mut_slice())
        }
        Err(_) => f(&mut vec![zero; len]),
    })
}

/// Quantizes `x` (rows of `k` values) into `acts` (rows of `nb` blocks), rows in parallel
/// when there are many.
fn quantize_rows<T: Send>(pool: &ThreadPool, x: &[f32], k: usize, acts: &mut [T], nb: usize, q: fn(&[f32], &mut [T])) {
    let m = x.len() / k.max(1);
    if pool.threads() == 1 || x.len() < PARALLEL_QUANT_MIN || m < 2 {
        q(x, acts);
        return;
    }
    let per = m.div_ceil(pool.threads());
    let tasks = m.div_ceil(per);
    let dst = Disjoint::new(acts);
    pool.run(tasks, &|t| {
        let rows = (t * per)..((t + 1) * per).min(m);
        let Some(src) = x.get(rows.start * k..rows.end * k) else { return };
        // SAFETY: task `t` alone touches activation rows `rows`.
        if let Some(dst) = unsafe { dst.slice(rows.start * nb, rows.len() * nb) } {
            q(src, dst);
        }
    });
}

/// A mutable slice shared by the tasks of one job, each of which touches only its own
/// elements (the invariant the `unsafe` accessors ask callers to uphold).
pub struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: access goes through the `unsafe` methods, whose callers guarantee that no element is
// touched by two threads at once; sending `T`s between threads needs `T: Send`.
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    pub fn new(s: &'a mut [T]) -> Self {
        Disjoint { ptr: s.as_mut_ptr(), len: s.len(), _borrow: PhantomData }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// A raw pointer to element `i` (clamped to one past the end), for kernels that write
    /// through strides; the caller must keep every write inside the slice and its own elements.
    pub fn ptr_at(&self, i: usize) -> *mut T {
        self.ptr.wrapping_add(i.min(self.len))
    }

    /// The elements `start..start + len` (clamped to this slice) as a slice of their own,
    /// indexed from 0.
    ///
    /// # Safety
    /// The same disjointness contract holds for the view as for this slice.
    pub unsafe fn view(&self, start: usize, len: usize) -> Disjoint<'a, T> {
        let start = start.min(self.len);
        Disjoint { ptr: self.ptr.wrapping_add(start), len: len.min(self.len - start), _borrow: PhantomData }
    }

    /// Writes element `i` (ignored if out of bounds).
    ///
    /// # Safety
    /// No other thread reads or writes element `i` during this job.
    #[inline(always)]
    pub unsafe fn set(&self, i: usize, v: T) {
        if i < self.len {
            // SAFETY: in bounds; exclusive by the caller's guarantee.
            unsafe { self.ptr.add(i).write(v) };
        }
    }

    /// Elements `start..start + len`, if in bounds.
    ///
    /// # Safety
    /// No other thread touches these elements while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, start: usize, len: usize) -> Option<&mut [T]> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: in bounds; exclusive by the caller's guarantee.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) })
    }
}
