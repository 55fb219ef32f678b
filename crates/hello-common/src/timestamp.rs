//! Instants as whole milliseconds since the Unix epoch, shown as RFC 3339 UTC with milliseconds
//! (`2026-11-24T10:00:00.123Z`): the precision the contract promises for `at`.

use std::time::{SystemTime, UNIX_EPOCH};

use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// `2026-11-24T10:00:00.123Z`.
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|instant| instant.format(RFC3339_MILLIS).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
    }

    /// Parses what [`Millis::to_rfc3339`] made; `None` for anything else.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let instant = time::PrimitiveDateTime::parse(text, RFC3339_MILLIS).ok()?;
        let nanos = instant.assume_utc().unix_timestamp_nanos();
        i64::try_from(nanos / 1_000_000).ok().map(Self)
    }

    /// This instant moved forward by `millis`.
    pub fn plus_millis(self, millis: u64) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(millis).unwrap_or(i64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_utc_with_milliseconds() {
        assert_eq!(Millis(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Millis(1_795_000_000_123).to_rfc3339(),
            "2026-11-18T11:06:40.123Z"
        );
    }

    #[test]
    fn parses_what_it_formats() {
        for millis in [0, 1_795_000_000_123] {
            assert_eq!(
                Millis::parse_rfc3339(&Millis(millis).to_rfc3339()),
                Some(Millis(millis))
            );
        }
        assert_eq!(Millis::parse_rfc3339("yesterday"), None);
    }
}
