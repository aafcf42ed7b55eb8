//! `zoo tui`: the ratatui dashboard of the zoo. It holds no operation logic: every action
//! calls `zoo-ops` (the same functions, progress events and cancellation as the CLI).
//!
//! - [`app`]: the state, the [`app::Action`] enum and [`app::update`] (pure);
//! - [`keys`]: keys and the mouse to actions, and the key table of the help overlay;
//! - [`ui`]: [`ui::draw`], the whole screen from the state (pure);
//! - [`runtime`]: the one event loop (input, ticks, job events) and the effects that start
//!   `zoo-ops` jobs; terminal set-up and restore.

pub mod app;
pub mod keys;
pub mod runtime;
pub mod ui;

pub use runtime::{Options, run};
