//! The parallel read of `scan` and `render`: records read on the calling thread, handed in
//! chunks to worker threads, and each chunk's result given back in file order on one thread.
//!
//! **Invariant:** at most `4 × threads` chunks are in flight (read, not yet handed back), so
//! memory does not grow with the file however slow one chunk is.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use zoo_progress::CancelToken;

use crate::Result;
use crate::read::{Format, Record, Watch, read_records_until};

/// Runs `work` on every `chunk` records of `path` on `threads` workers and gives the results
/// to `done` in file order; `done` returning false stops the reading (later records are not
/// read). Returns what [`read_records_until`] returns (with `watch`: the file's bytes as
/// progress, and `Cancelled` once its token is set: no chunk is handed out after it, the
/// reading stops within a buffer), and the format of the records read (known even when the
/// file breaks part way).
pub(crate) fn map_chunks<T, W, D>(
    path: &Path,
    format: Option<Format>,
    (threads, chunk): (usize, usize),
    watch: Watch,
    work: W,
    mut done: D,
) -> (Result<(Option<Format>, usize)>, Option<Format>)
where
    T: Send,
    W: Fn(Format, &[Record]) -> T + Sync,
    D: FnMut(T) -> bool + Send,
{
    let threads = threads.max(1);
    let chunk = chunk.max(1);
    let stop = AtomicBool::new(false);
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<(usize, Format, Vec<Record>)>(threads * 2);
    let jobs_rx = Mutex::new(jobs_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, T)>();
    // One permit per chunk in flight.
    let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(threads * 4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (done_tx, jobs_rx, work) = (done_tx.clone(), &jobs_rx, &work);
            s.spawn(move || {
                loop {
                    // The lock is held only to receive; a poisoned one means a worker panicked
                    // (the scope passes the panic on).
                    let next = match jobs_rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => break,
                    };
                    let Ok((seq, fmt, records)) = next else { break };
                    if done_tx.send((seq, work(fmt, &records))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let stop_ref = &stop;
        s.spawn(move || {
            let mut pending = BTreeMap::new();
            let mut next = 0usize;
            for (seq, t) in done_rx {
                pending.insert(seq, t);
                while let Some(t) = pending.remove(&next) {
                    next += 1;
                    let _ = permit_rx.recv();
                    if !stop_ref.load(Ordering::Relaxed) && !done(t) {
                        stop_ref.store(true, Ordering::Relaxed);
                    }
                }
            }
        });
        let mut seq = 0usize;
        let mut send = |fmt: Format, records: Vec<Record>| {
            // Blocks while enough chunks are in flight.
            if permit_tx.send(()).is_ok() {
                let _ = jobs_tx.send((seq, fmt, records));
                seq += 1;
            }
        };
        let mut records = Vec::with_capacity(chunk);
        let mut detected = None;
        let read = read_records_until(path, format, watch, |fmt, rec| {
            if stop.load(Ordering::Relaxed) || watch.cancel.is_some_and(CancelToken::is_cancelled) {
                return;
            }
            detected = Some(fmt);
            records.push(rec);
            if records.len() == chunk {
                send(fmt, std::mem::replace(&mut records, Vec::with_capacity(chunk)));
            }
        });
        if let (Some(fmt), false) = (detected, records.is_empty()) {
            send(fmt, records);
        }
        drop(jobs_tx);
        drop(permit_tx);
        (read, detected)
    })
}
