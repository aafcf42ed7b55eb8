//! Black-box tests of zoo-chat: one test binary, one module per area.

mod conversation;
mod formats;
mod jinja;
mod smollm2;
mod stream;
