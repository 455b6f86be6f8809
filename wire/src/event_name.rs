//! Which metric-event names are valid: 1 to [`MAX_EVENT_NAME_LEN`]
//! characters of `A-Z a-z 0-9 _ . : -`. The edge checks the names apps post,
//! the origin the names it ingests and the events metrics count.
//!
//! ```
//! use bunting_wire::{check_event_name, EventNameError};
//! assert_eq!(check_event_name("checkout.completed"), Ok(()));
//! assert_eq!(check_event_name("has space"), Err(EventNameError::Character(' ')));
//! assert_eq!(check_event_name(""), Err(EventNameError::Length));
//! ```

use thiserror::Error;

/// Longest event name, in characters (all ASCII, so also in bytes).
pub const MAX_EVENT_NAME_LEN: usize = 128;

/// Why a string is not an event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EventNameError {
    /// Empty, or longer than [`MAX_EVENT_NAME_LEN`].
    #[error("must have 1 to {MAX_EVENT_NAME_LEN} characters")]
    Length,
    /// The first character outside `A-Z a-z 0-9 _ . : -`.
    #[error("may only contain A-Z, a-z, 0-9, '_', '.', ':' and '-', not {0:?}")]
    Character(char),
}

/// Whether `c` may appear in an event name.
///
/// ```
/// use bunting_wire::event_name::is_event_name_char;
/// assert!(is_event_name_char(':') && !is_event_name_char('/') && !is_event_name_char('é'));
/// ```
pub fn is_event_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// Checks an event name: its characters first (the first bad one is
/// reported), then its length.
pub fn check_event_name(name: &str) -> Result<(), EventNameError> {
    if let Some(c) = name.chars().find(|&c| !is_event_name_char(c)) {
        return Err(EventNameError::Character(c));
    }
    // All ASCII from here: bytes are characters.
    if name.is_empty() || name.len() > MAX_EVENT_NAME_LEN {
        return Err(EventNameError::Length);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let longest = "n".repeat(MAX_EVENT_NAME_LEN);
        for ok in [
            "a",
            "purchase",
            "page.view",
            "a:b-c_d",
            "A9",
            longest.as_str(),
        ] {
            assert_eq!(check_event_name(ok), Ok(()), "{ok}");
        }
        let long = "n".repeat(MAX_EVENT_NAME_LEN + 1);
        for (bad, want) in [
            ("", EventNameError::Length),
            (long.as_str(), EventNameError::Length),
            ("has space", EventNameError::Character(' ')),
            ("é", EventNameError::Character('é')),
            ("a/b", EventNameError::Character('/')),
            ("tab\t", EventNameError::Character('\t')),
        ] {
            assert_eq!(check_event_name(bad), Err(want), "{bad:?}");
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            EventNameError::Length.to_string(),
            "must have 1 to 128 characters"
        );
        assert_eq!(
            EventNameError::Character(' ').to_string(),
            "may only contain A-Z, a-z, 0-9, '_', '.', ':' and '-', not ' '"
        );
    }
}
