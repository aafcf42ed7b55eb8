//! Scanning the cache: repos, revisions, files and sizes; removing and pruning.
