//! Memory advice for loaded weights.

/// Asks the kernel to back `region` (typically a fresh `Vec` or its spare capacity, about to
/// be filled with weights) with transparent huge pages where it can: loading then takes one page
/// fault per 2 MiB instead of per 4 KiB, and reading the weights every token misses the TLB
/// far less. Advice only: without THP (or off Linux) nothing changes, and errors are ignored.
pub fn advise_huge_pages<T>(region: &mut [T]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = region.as_mut_ptr() as usize;
        let end = start.saturating_add(std::mem::size_of_val(region));
        // Only whole huge pages inside the region: madvise wants an aligned start, and the
        // advice never reaches memory outside the slice.
        let (lo, hi) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if hi > lo {
            // SAFETY: [lo, hi) lies inside `region`, which we borrow mutably; MADV_HUGEPAGE
            // changes how the kernel backs the pages, never their contents or validity.
            unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = region;
}

/// Size of a transparent huge page on x86-64 and the alignment [`HugeBytes`] gives.
const HUGE_PAGE: usize = 2 << 20;

/// A zero-filled byte buffer for weights the model reads every token, whose start is aligned
/// to 2 MiB and advised onto huge pages (Linux): unlike a `Vec`, which the allocator places
/// 16 bytes into a fresh mapping, every whole 2 MiB of it can be a huge page (a 2 MiB `Vec`
/// gets none). Elsewhere, or if the mapping fails, a plain `Vec`.
pub struct HugeBytes {
    inner: Inner,
}

enum Inner {
    #[cfg(target_os = "linux")]
    Mapped {
        ptr: std::ptr::NonNull<u8>,
        len: usize,
    },
    Heap(Vec<u8>),
}

// SAFETY: the mapping is owned exclusively by this value (like a Vec's buffer).
unsafe impl Send for HugeBytes {}
// SAFETY: shared access only reads.
unsafe impl Sync for HugeBytes {}

impl HugeBytes {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> HugeBytes {
        #[cfg(target_os = "linux")]
        if len >= HUGE_PAGE
            && let Some(inner) = Self::map(len)
        {
            return HugeBytes { inner };
        }
        HugeBytes { inner: Inner::Heap(vec![0; len]) }
    }

    /// A mapping of `len` bytes starting on a huge-page boundary: map `len + 2 MiB`, then
    /// unmap what lies before the first boundary and after the end.
    #[cfg(target_os = "linux")]
    fn map(len: usize) -> Option<Inner> {
        let total = len.checked_add(HUGE_PAGE)?;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing; the
        // result is checked for failure before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let start = (base as usize).next_multiple_of(HUGE_PAGE);
        let head = start - base as usize;
        let tail_start = (start + len).next_multiple_of(4096);
        let tail = base as usize + total - tail_start;
        // SAFETY: both ranges lie inside the mapping made above, page-aligned (mmap returns a
        // page-aligned base, `start` and `tail_start` are page multiples), and nothing uses them.
        unsafe {
            if head > 0 {
                libc::munmap(base, head);
            }
            if tail > 0 {
                libc::munmap(tail_start as *mut libc::c_void, tail);
            }
            // Advice only: errors leave ordinary pages.
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        Some(Inner::Mapped { ptr: std::ptr::NonNull::new(start as *mut u8)?, len })
    }

    /// A copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> HugeBytes {
        let mut b = HugeBytes::zeroed(bytes.len());
        b.copy_from_slice(bytes);
        b
    }
}

impl std::ops::Deref for HugeBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            // SAFETY: `ptr` points to `len` mapped, initialized (zero-filled or written) bytes
            // owned by this value.
            #[cfg(target_os = "linux")]
            Inner::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts(ptr.as_ptr(), *len) },
            Inner::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for HugeBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.inner {
            // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
            #[cfg(target_os = "linux")]
            Inner::Mapped { ptr, len } => unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), *len) },
            Inner::Heap(v) => v,
        }
    }
}

impl Drop for HugeBytes {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Inner::Mapped { ptr, len } = self.inner {
            // SAFETY: the range is what `map` kept of its mapping; nothing refers to it after drop.
            unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
        }
    }
}

impl std::fmt::Debug for HugeBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HugeBytes({} bytes)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_bytes_are_aligned_zeroed_and_writable() {
        for len in [0, 5, HUGE_PAGE, 3 * HUGE_PAGE + 4097] {
            let mut b = HugeBytes::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&v| v == 0));
            if len >= HUGE_PAGE && cfg!(target_os = "linux") {
                assert_eq!(b.as_ptr() as usize % HUGE_PAGE, 0);
            }
            for (i, v) in b.iter_mut().enumerate() {
                *v = i as u8;
            }
            assert!(b.iter().enumerate().all(|(i, &v)| v == i as u8));
            let c = HugeBytes::copy_of(&b);
            assert_eq!(&*c, &*b);
        }
    }

    #[test]
    fn advice_keeps_contents_and_takes_any_slice() {
        advise_huge_pages::<u8>(&mut []);
        let mut small = [7u8; 3];
        advise_huge_pages(&mut small);
        assert_eq!(small, [7; 3]);
        let mut big: Vec<u32> = (0..3 << 20).collect();
        advise_huge_pages(&mut big[1..]);
        assert!(big.iter().enumerate().all(|(i, &v)| v as usize == i));
    }

    /// Where THP is available, the mapping holding an advised region is marked for it
    /// (`THPeligible: 1` in smaps).
    #[cfg(target_os = "linux")]
    #[test]
    fn advised_mapping_is_huge_page_eligible() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if !mode.contains("[madvise]") {
            eprintln!("THP mode {mode:?}: only `madvise` shows the advice; skipped");
            return;
        }
        let mut v = vec![0u8; 16 << 20];
        advise_huge_pages(&mut v);
        let at = v.as_ptr() as usize + (8 << 20);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut eligible = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&at);
            } else if inside && let Some(flag) = line.strip_prefix("THPeligible:") {
                eligible = Some(flag.trim() == "1");
            }
        }
        assert_eq!(eligible, Some(true), "the advised mapping is not THP-eligible");
    }
}
