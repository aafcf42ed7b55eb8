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

#[cfg(test)]
mod tests {
    use super::*;

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
