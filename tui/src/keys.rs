//! Keys and the mouse, to [`Action`]s. What a key means depends on where the focus is: in a
//! text field letters are typed; elsewhere they are commands. The help overlay
//! ([`crate::ui::help`]) lists the same table, [`BINDINGS`].

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind};

use crate::app::{Action, App, Confirm, Facet, Tab};

/// Every key, by screen, for the help overlay: (screen, keys, what they do).
pub const BINDINGS: &[(&str, &str, &str)] = &[
    ("everywhere", "Tab / Shift-Tab, 1-6", "next / previous screen, go to a screen"),
    ("everywhere", "?", "this help"),
    ("everywhere", "q, Ctrl-C", "quit (asks while a job runs; Ctrl-C twice: at once)"),
    ("everywhere", "Esc", "close, stop streaming, back to Models"),
    ("everywhere", "mouse", "click a tab or a row, wheel scrolls"),
    ("Models", "↑ ↓ PgUp PgDn g G", "move"),
    ("Models", "/", "filter as you type (Enter keeps it, Esc leaves it)"),
    ("Models", "f a k l o", "facet: family, arch, kind, language, local"),
    ("Models", "F", "clear facets and filter"),
    ("Models", "s / S", "sort by the next column / reverse"),
    ("Models", "Enter", "detail pane (files, chain, results, memory fit)"),
    ("Models", "p", "pull (a delta: pull and apply to its base)"),
    ("Models", "A", "apply delta (asks the base; the catalog's offered)"),
    ("Models", "v", "verify sha256 of every local file"),
    ("Models", "Z", "quantize to GGUF (asks the type)"),
    ("Models", "x, Delete", "delete from the cache (asks first)"),
    ("Models", "c", "chat with the model"),
    ("Models", "e", "evaluate the model"),
    ("Models", "r", "read the registry again"),
    ("Chat", "Enter", "send"),
    ("Chat", "Esc", "stop the answer / back"),
    ("Chat", "Ctrl-L", "reset the conversation"),
    ("Chat", "↑ ↓", "scroll the history"),
    ("Results", "↑ ↓", "benchmark"),
    ("Results", "← →", "column (language)"),
    ("Evaluate", "↑ ↓, Enter", "pick a field, edit it (Enter again keeps it); Enter on Start runs"),
    ("Vote", "↑ ↓, Enter", "fill the form; Enter on Start loads the ballots"),
    ("Vote", "1 / ←, 2 / →, t", "left better, right better, tie"),
    ("Vote", "n", "skip the question"),
    ("Jobs", "↑ ↓", "pick a job"),
    ("Jobs", "x", "cancel the job"),
];

/// The action of a terminal event, if any.
pub fn action(app: &App, ev: &Event) -> Option<Action> {
    match ev {
        Event::Key(k) if k.kind != KeyEventKind::Release => key(app, k),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::ScrollUp => Some(Action::Up),
            MouseEventKind::ScrollDown => Some(Action::Down),
            MouseEventKind::Down(MouseButton::Left) => click(app, m.column, m.row),
            _ => None,
        },
        Event::Resize(..) => Some(Action::Tick),
        Event::Paste(s) => s.chars().next().filter(|_| app.typing()).map(Action::Type),
        _ => None,
    }
}

fn click(app: &App, x: u16, y: u16) -> Option<Action> {
    let h = &app.hit;
    if y == h.tab_row
        && let Some((_, _, t)) = h.tabs.iter().find(|(a, b, _)| (*a..*b).contains(&x))
    {
        return Some(Action::GoTab(*t));
    }
    if app.tab == Tab::Models && !app.detail_open && y >= h.table_top && y < h.table_top + h.table_height {
        return Some(Action::SelectRow(h.table_offset + (y - h.table_top) as usize));
    }
    None
}

fn key(app: &App, k: &KeyEvent) -> Option<Action> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('q')) {
        // A second Ctrl-C answers the quit question with yes.
        return Some(if matches!(app.confirm, Some(Confirm::Quit { .. })) { Action::Yes } else { Action::Quit });
    }
    if app.help {
        return Some(Action::ToggleHelp);
    }
    if app.confirm.is_some() {
        return match k.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => Some(Action::Yes),
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => Some(Action::No),
            _ => None,
        };
    }
    // Keys every screen shares, text fields included.
    match k.code {
        KeyCode::Tab => return Some(Action::NextTab),
        KeyCode::BackTab => return Some(Action::PrevTab),
        KeyCode::Esc => return Some(Action::Back),
        KeyCode::Enter => return Some(Action::Submit),
        KeyCode::Up => return Some(Action::Up),
        KeyCode::Down => return Some(Action::Down),
        KeyCode::PageUp => return Some(Action::PageUp),
        KeyCode::PageDown => return Some(Action::PageDown),
        _ => {}
    }
    if app.typing() {
        return match k.code {
            KeyCode::Char('l') if ctrl && app.tab == Tab::Chat => Some(Action::ChatReset),
            KeyCode::Char(c) if !ctrl => Some(Action::Type(c)),
            KeyCode::Backspace => Some(Action::Backspace),
            _ => None,
        };
    }
    if let KeyCode::Char(c @ '1'..='6') = k.code
        && !(app.tab == Tab::Vote && app.vote.active)
    {
        return Some(Action::GoTab(Tab::ALL[c as usize - '1' as usize]));
    }
    let common = match k.code {
        KeyCode::Char('?') => Some(Action::ToggleHelp),
        KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Left => Some(Action::Left),
        KeyCode::Right => Some(Action::Right),
        KeyCode::Home => Some(Action::Top),
        KeyCode::End => Some(Action::Bottom),
        _ => None,
    };
    if common.is_some() {
        return common;
    }
    match app.tab {
        Tab::Models => match k.code {
            KeyCode::Char('j') => Some(Action::Down),
            KeyCode::Char('k') if !app.detail_open => Some(Action::CycleFacet(Facet::Kind)),
            KeyCode::Char('g') => Some(Action::Top),
            KeyCode::Char('G') => Some(Action::Bottom),
            KeyCode::Char('/') => Some(Action::StartFilter),
            KeyCode::Char('f') => Some(Action::CycleFacet(Facet::Family)),
            KeyCode::Char('a') => Some(Action::CycleFacet(Facet::Arch)),
            KeyCode::Char('l') => Some(Action::CycleFacet(Facet::Lang)),
            KeyCode::Char('o') => Some(Action::CycleFacet(Facet::Local)),
            KeyCode::Char('F') => Some(Action::ClearFacets),
            KeyCode::Char('s') => Some(Action::CycleSort),
            KeyCode::Char('S') => Some(Action::ReverseSort),
            KeyCode::Char('p') => Some(Action::Pull),
            KeyCode::Char('A') => Some(Action::ApplyDelta),
            KeyCode::Char('v') => Some(Action::Verify),
            KeyCode::Char('Z') => Some(Action::Quantize),
            KeyCode::Char('x') | KeyCode::Delete => Some(Action::Delete),
            KeyCode::Char('c') => Some(Action::ChatWithSelected),
            KeyCode::Char('e') => Some(Action::EvaluateSelected),
            KeyCode::Char('r') => Some(Action::Refresh),
            _ => None,
        },
        Tab::Jobs => match k.code {
            KeyCode::Char('x') | KeyCode::Delete => Some(Action::CancelJob),
            _ => None,
        },
        Tab::Vote if app.vote.active => match k.code {
            KeyCode::Char(c @ ('1' | '2' | 't' | 'T' | '=')) => Some(Action::VoteKey(c)),
            KeyCode::Char('n') => Some(Action::VoteSkip),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{Confirm, update};

    fn press(app: &App, code: KeyCode, mods: KeyModifiers) -> Option<Action> {
        action(app, &Event::Key(KeyEvent::new(code, mods)))
    }

    #[test]
    fn letters_are_typed_in_fields_and_commands_elsewhere() {
        let mut app = App::new();
        assert!(matches!(press(&app, KeyCode::Char('q'), KeyModifiers::NONE), Some(Action::Quit)));
        assert!(matches!(press(&app, KeyCode::Char('/'), KeyModifiers::NONE), Some(Action::StartFilter)));
        update(&mut app, Action::StartFilter);
        assert!(matches!(press(&app, KeyCode::Char('q'), KeyModifiers::NONE), Some(Action::Type('q'))));
        app.filtering = false;
        app.tab = Tab::Chat;
        assert!(matches!(press(&app, KeyCode::Char('3'), KeyModifiers::NONE), Some(Action::Type('3'))));
        assert!(matches!(press(&app, KeyCode::Char('l'), KeyModifiers::CONTROL), Some(Action::ChatReset)));
        assert!(matches!(press(&app, KeyCode::Tab, KeyModifiers::NONE), Some(Action::NextTab)));
        app.tab = Tab::Results;
        assert!(matches!(press(&app, KeyCode::Char('3'), KeyModifiers::NONE), Some(Action::GoTab(Tab::Results))));
    }

    #[test]
    fn ctrl_c_asks_then_confirms_and_release_events_are_ignored() {
        let mut app = App::new();
        assert!(matches!(press(&app, KeyCode::Char('c'), KeyModifiers::CONTROL), Some(Action::Quit)));
        app.confirm = Some(Confirm::Quit { running: 1 });
        assert!(matches!(press(&app, KeyCode::Char('c'), KeyModifiers::CONTROL), Some(Action::Yes)));
        assert!(press(&app, KeyCode::Char('x'), KeyModifiers::NONE).is_none());
        let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        app.confirm = None;
        assert!(action(&app, &Event::Key(release)).is_none());
    }
}
