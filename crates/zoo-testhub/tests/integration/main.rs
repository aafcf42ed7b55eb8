//! Black-box tests of zoo-testhub: raw HTTP, the real hf-hub 0.5 client, and Python huggingface_hub 2.4.0.

mod hf_hub_client;
mod protocol;
mod python_client;
mod util;
