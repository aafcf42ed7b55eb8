//! The `zoo tui` dashboard. Empty until its issue: the crate exists so the workspace layout,
//! CI and dependency direction (the TUI calls libraries, nothing calls the TUI) are fixed now.
