//! Names stored in the index (user names, env ids, tags): what is accepted, checked in one
//! place for recording, repair and the CLI.

use crate::error::{RecordError, Result};

/// Longest user name or env id, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Checks a user name: user names are data (never used to build a path), 1..=256 bytes, no
/// control characters, no leading or trailing white space.
pub fn validate_user(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_BYTES {
        Some("it is longer than 256 bytes")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name.trim() != name {
        Some("it starts or ends with white space")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(RecordError::InvalidUser {
            name: name.to_owned(),
            reason,
        }
        .into()),
        None => Ok(()),
    }
}

pub(crate) fn check_name(what: &'static str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(RecordError::InvalidMetadata {
            what,
            reason: format!(
                "{name:?} must be 1..={MAX_NAME_BYTES} bytes without control characters"
            ),
        }
        .into());
    }
    Ok(())
}
