//! SnapshotSchedule's pure decisions: parsing its cron, time zone and durations, which
//! run is due, which were missed, and which snapshots retention keeps. No I/O here; the
//! controller (`controller::snapshot_schedule`) acts on what these functions return.
//!
//! Cron is parsed and evaluated by `croner` on `jiff` zoned times (jiff bundles the IANA
//! time zone database, so the image needs no tzdata). DST follows croner (Vixie cron):
//! a fixed-time run whose local time is skipped runs once right after the gap; one whose
//! local time repeats runs once, at the first pass.

use std::str::FromStr;
use std::time::Duration;

use croner::Cron;
use jiff::tz::TimeZone;

/// The cron macros accepted besides five fields.
pub const MACROS: [&str; 5] = ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"];

/// Parses `spec.schedule`: five fields (minute hour day-of-month month day-of-week) or
/// one of [`MACROS`]. The error says what is wrong, without the field's name.
pub fn parse_schedule(expr: &str) -> Result<Cron, String> {
    let expr = expr.trim();
    let fields = expr.split_whitespace().count();
    if expr.starts_with('@') {
        if !MACROS.contains(&expr) {
            return Err(format!(
                "{expr:?} is not a known macro; use one of {}",
                MACROS.join(", ")
            ));
        }
    } else if fields != 5 {
        return Err(format!(
            "{expr:?} has {fields} fields; a schedule has five (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\""
        ));
    }
    Cron::from_str(expr).map_err(|e| format!("{expr:?} is not a valid cron expression: {e}"))
}

/// Parses `spec.timeZone` (an IANA name such as `Europe/Berlin`); `None` is UTC.
pub fn parse_time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|_| {
            format!(
                "{name:?} is not an IANA time zone; use a name such as \"Europe/Berlin\" or \"UTC\""
            )
        }),
    }
}

/// Parses a Go-style duration (`720h`, `90m`, `1h30m`, `1.5h`, `45s`) with jiff's
/// duration parser (which also takes ISO 8601, `PT1H`). Negative or zero durations are
/// refused: a retention age of zero would delete everything but the newest snapshot.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{text:?} is not a positive duration; write hours, minutes and seconds, e.g. \"720h\" or \"1h30m\""
        )
    };
    let parsed: jiff::SignedDuration = text.trim().parse().map_err(|_| bad())?;
    if parsed.is_negative() || parsed.is_zero() {
        return Err(bad());
    }
    Duration::try_from(parsed).map_err(|_| bad())
}
