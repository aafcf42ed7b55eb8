//! The threads a model computes on, chosen once by the caller and handed to the loader: the
//! kernels' pool (`zoo_kernels::ThreadPool`) and a rayon pool that candle's own parallel CPU
//! operations (matrix products, softmax) run inside. Nothing here is process-wide.

use std::sync::Arc;

use zoo_kernels::ThreadPool;

/// The thread pools of one or more models. Share one `Arc<Threads>` between models that run
/// one after another (`zoo quantize --perplexity`); models that run at the same time each
/// want their own.
pub struct Threads {
    kernels: Arc<ThreadPool>,
    /// `None` when the OS refused to start rayon's threads: candle then runs on its own pools.
    tensors: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threads").field("threads", &self.count()).finish()
    }
}

impl Threads {
    /// `n` threads in each pool (0 counts as 1), the calling thread included for the kernels.
    pub fn new(n: usize) -> Arc<Threads> {
        let n = n.max(1);
        let tensors =
            rayon::ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("zoo-candle-{i}")).build().ok();
        Arc::new(Threads { kernels: Arc::new(ThreadPool::new(n)), tensors })
    }

    /// As many threads as the machine offers to this process.
    pub fn all_cores() -> Arc<Threads> {
        Threads::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The kernels' pool.
    pub fn kernels(&self) -> &Arc<ThreadPool> {
        &self.kernels
    }

    pub fn count(&self) -> usize {
        self.kernels.threads()
    }

    /// Runs `f`, whose candle operations then use this pool's rayon threads rather than
    /// rayon's global pool.
    ///
    /// candle splits a matrix product into as many parts as it counts cores (it reads
    /// `RAYON_NUM_THREADS` for that), but the parts run on the threads of the pool they are
    /// started in, so at most `n` run at once. Its element-wise maps over large tensors use a
    /// pool of candle's own, sized once from the environment; we leave that one alone (see
    /// docs/ARCHITECTURE.md, "Threads").
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.tensors {
            Some(p) => p.install(f),
            None => f(),
        }
    }
}
