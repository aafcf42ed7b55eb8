//! A small persistent thread pool for the kernels: `run(n, f)` calls `f(0..n)` spread over the
//! workers and the calling thread, and returns when all calls are done.
//!
//! A decode step calls `run` a few hundred times with tasks of tens of microseconds, so the
//! handoff must cost far less than that: jobs are published through one atomic word, workers
//! spin on it for a while after each job (so back-to-back jobs never touch a lock) and only
//! then park on a condvar.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bits of the job word: `epoch << 40 | n_tasks << 20 | next_task`.
const TASK_BITS: u32 = 20;
const TASK_MASK: u64 = (1 << TASK_BITS) - 1;
/// Tasks per published job. `next_task` may overshoot `n_tasks` by one per participant, so
/// keep well below the field's limit; bigger `run`s are split into several jobs.
const MAX_TASKS: usize = (1 << (TASK_BITS - 1)) - 1;
/// How long an idle worker spins before parking: longer than the gap between two matmuls of
/// a decode step, shorter than anything a user would notice as a busy core.
const SPIN: Duration = Duration::from_micros(200);

/// The job being run: the task function with its lifetime erased (see `run` for why that is
/// sound).
type TaskFn = *const (dyn Fn(usize) + Sync + 'static);

struct Shared {
    /// `epoch << 40 | n_tasks << 20 | next_task`; workers claim tasks with `fetch_add(1)`.
    job: AtomicU64,
    /// The current job's function. Written by `run` only while no task is claimable (all
    /// tasks of the previous job are done), read by a worker only after it claimed a task of
    /// the current job, so the publishing store/claiming RMW on `job` order the accesses.
    task: UnsafeCell<Option<TaskFn>>,
    /// Tasks of the current job that have finished (successfully or not).
    done: AtomicUsize,
    /// Set when a task panicked; `run` re-raises after the job.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// Workers parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `task` is the only non-Sync field; its accesses are ordered through `job` as
// described on the field, and the pointee is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced while the job that owns it runs.
unsafe impl Send for Shared {}

/// Persistent worker threads. `ThreadPool::new(1)` has none and runs everything inline.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes `run` calls from different threads (one job at a time).
    run_lock: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool").field("threads", &self.threads()).finish()
    }
}

impl ThreadPool {
    /// A pool of `n_threads` threads in all, the caller of `run` included (0 counts as 1).
    /// If the OS refuses to start a thread, the pool simply has fewer.
    pub fn new(n_threads: usize) -> ThreadPool {
        let shared = Arc::new(Shared {
            job: AtomicU64::new(0),
            task: UnsafeCell::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..n_threads.max(1))
            .map_while(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new().name(format!("zoo-kernels-{i}")).spawn(move || worker(&s)).ok()
            })
            .collect();
        ThreadPool { shared, workers, run_lock: Mutex::new(()) }
    }

    /// Threads that run tasks, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(i)` for every `i` in `0..n_tasks`, each exactly once, on the workers and the
    /// calling thread, and returns when all have returned. Tasks are handed out in order to
    /// whichever thread is free. A panic in a task is re-raised here after the job ends.
    /// Do not call `run` from inside a task of the same pool (it would wait for itself).
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        if self.workers.is_empty() || n_tasks == 1 {
            (0..n_tasks).for_each(f);
            return;
        }
        let _serial = lock(&self.run_lock);
        let mut start = 0;
        while start < n_tasks {
            let count = (n_tasks - start).min(MAX_TASKS);
            let offset = start;
            self.run_job(count, &|i| f(offset + i));
            start += count;
        }
        if self.shared.panicked.swap(false, Ordering::Relaxed) {
            resume_unwind(Box::new("a zoo-kernels task panicked"));
        }
    }

    /// One published job of at most `MAX_TASKS` tasks.
    fn run_job(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        let s = &*self.shared;
        // SAFETY (lifetime erasure): workers dereference this pointer only for tasks of this
        // job, and this function does not return (nor unwind: see `WaitAll`) until every
        // task of this job has finished, so `f` outlives every use.
        let erased: TaskFn = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), TaskFn>(f) };
        // SAFETY: no task is claimable now (the previous job's tasks are all done and its
        // counter is exhausted), so no worker reads `task` concurrently.
        unsafe { *s.task.get() = Some(erased) };
        s.done.store(0, Ordering::Relaxed);
        let old = s.job.load(Ordering::Relaxed);
        let epoch = (old >> 40).wrapping_add(1) & 0xFF_FFFF;
        s.job.store(epoch << 40 | (n_tasks as u64) << TASK_BITS, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            // Take the lock so a worker between its last check and its wait cannot miss this.
            let _g = lock(&s.lock);
            s.wake.notify_all();
        }
        let wait = WaitAll { shared: s, n_tasks };
        claim_and_run(s);
        drop(wait);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = lock(&self.shared.lock);
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Waits (on drop, so also while unwinding) until all `n_tasks` tasks of the job are done.
struct WaitAll<'a> {
    shared: &'a Shared,
    n_tasks: usize,
}

impl Drop for WaitAll<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.shared.done.load(Ordering::Acquire) < self.n_tasks {
            spins = spins.saturating_add(1);
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else {
                // A worker was descheduled (the cores are shared): stop burning its core.
                std::thread::yield_now();
            }
        }
    }
}

/// Claims and runs tasks until the current job has none left; returns the epoch of the last
/// job it looked at. A claim that lands in a newer job than the caller expected is still a
/// valid claim of that job's task, so it is run, never dropped.
fn claim_and_run(s: &Shared) -> u64 {
    loop {
        let word = s.job.fetch_add(1, Ordering::AcqRel);
        let (e, n, t) = (word >> 40, (word >> TASK_BITS) & TASK_MASK, word & TASK_MASK);
        if t >= n {
            return e;
        }
        // SAFETY: we hold an unfinished task of the current job, so `run_job` has published
        // `task` for it (ordered by the AcqRel RMW on `job`) and is still waiting for us.
        let f = unsafe { *s.task.get() };
        if let Some(f) = f {
            // SAFETY: the pointee outlives the job (see `run_job`).
            let f = unsafe { &*f };
            if catch_unwind(AssertUnwindSafe(|| f(t as usize))).is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

fn worker(s: &Shared) {
    let mut seen = s.job.load(Ordering::Acquire) >> 40;
    loop {
        // Spin a while for the next job, then park.
        let start = Instant::now();
        let mut i = 0u32;
        loop {
            if s.shutdown.load(Ordering::Relaxed) {
                return;
            }
            let e = s.job.load(Ordering::Acquire) >> 40;
            if e != seen {
                break;
            }
            i = i.wrapping_add(1);
            if i.is_multiple_of(256) && start.elapsed() > SPIN {
                let mut g = lock(&s.lock);
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                loop {
                    if s.shutdown.load(Ordering::SeqCst) {
                        s.sleepers.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                    let e = s.job.load(Ordering::SeqCst) >> 40;
                    if e != seen {
                        break;
                    }
                    g = s.wake.wait(g).unwrap_or_else(|p| p.into_inner());
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(g);
                continue;
            }
            std::hint::spin_loop();
        }
        seen = claim_and_run(s);
    }
}

/// Locks a mutex that guards no data (a poisoned one is as good as any).
fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn pool_is_shareable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ThreadPool>();
    }

    #[test]
    fn every_task_runs_once() {
        for threads in [1, 2, 3, 8] {
            let pool = ThreadPool::new(threads);
            assert_eq!(pool.threads(), threads);
            for n in [0, 1, 2, 5, 100, 1000] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                pool.run(n, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "threads {threads} n {n}");
            }
        }
    }

    #[test]
    fn many_small_jobs_and_parking() {
        let pool = ThreadPool::new(3);
        let total = AtomicUsize::new(0);
        for round in 0..2000 {
            pool.run(4, &|i| {
                total.fetch_add(i + 1, Ordering::Relaxed);
            });
            if round % 500 == 0 {
                // Let the workers park, then wake them again.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert_eq!(total.load(Ordering::Relaxed), 2000 * 10);
    }

    #[test]
    fn concurrent_callers_take_turns() {
        let pool = ThreadPool::new(3);
        let total = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        pool.run(7, &|i| {
                            total.fetch_add(i, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 4 * 200 * 21);
    }

    #[test]
    fn panics_are_reraised_and_pool_survives() {
        let pool = ThreadPool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(8, &|i| {
                if i == 5 {
                    std::panic::panic_any("boom");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(8, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 8);
    }
}
