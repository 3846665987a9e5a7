//! How hard palisade says no: `enforce`, `warn` or `dry-run`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What happens to a request that breaks a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Deny it.
    #[default]
    Enforce,
    /// Allow it, tell the client (`warnings`) and the audit log.
    Warn,
    /// Allow it silently; only audit annotations, logs and metrics record
    /// what would have been denied or injected.
    DryRun,
}

impl Mode {
    /// Every mode, strongest first.
    pub const ALL: [Mode; 3] = [Mode::Enforce, Mode::Warn, Mode::DryRun];

    /// The name as config files and labels spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::DryRun => "dry-run",
        }
    }

    fn strength(self) -> u8 {
        match self {
            Mode::Enforce => 2,
            Mode::Warn => 1,
            Mode::DryRun => 0,
        }
    }

    /// Does `self` protect less than `other`?
    pub fn is_weaker_than(self, other: Mode) -> bool {
        self.strength() < other.strength()
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not one of the three.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown mode {0:?} (expected enforce, warn or dry-run)")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names() {
        assert!(Mode::DryRun.is_weaker_than(Mode::Warn));
        assert!(Mode::Warn.is_weaker_than(Mode::Enforce));
        assert!(!Mode::Enforce.is_weaker_than(Mode::Enforce));
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert!("Enforce".parse::<Mode>().is_err());
    }
}
