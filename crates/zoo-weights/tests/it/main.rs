//! Black-box tests of zoo-weights: reference fixtures, torch-made delta cases, hostile inputs.

mod cases;
mod fixtures;
mod gptq;
mod hostile;
mod util;
