//! Checkpoint formats and weight transforms. Filled in by the weights issue.
