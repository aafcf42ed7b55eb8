//! Pulling files from the hub into the cache.
