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
use jiff::Timestamp;
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

/// At most this many missed scheduled times are counted by one call to [`due`]. A
/// `lastScheduleTime` years old with a per-minute cron would otherwise mean millions of
/// cron steps in one reconcile; past the cap [`Due::missed`] stays at the cap (the newest
/// due time is still found without enumerating, so the run itself is unaffected).
pub const MISSED_CAP: u32 = 10_000;

/// A parsed `spec.schedule` evaluated in `spec.timeZone`.
#[derive(Debug, Clone)]
pub struct Clock {
    pub cron: Cron,
    pub zone: TimeZone,
}

impl Clock {
    /// Parses both fields; the error names the field that is wrong
    /// (`spec.schedule: ...` or `spec.timeZone: ...`).
    pub fn new(schedule: &str, time_zone: Option<&str>) -> Result<Clock, String> {
        let cron = parse_schedule(schedule).map_err(|e| format!("spec.schedule: {e}"))?;
        let zone = parse_time_zone(time_zone).map_err(|e| format!("spec.timeZone: {e}"))?;
        Ok(Clock { cron, zone })
    }

    /// The newest scheduled time at or before `at`, if the cron has one within
    /// croner's search limit.
    pub fn previous(&self, at: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_previous_occurrence(&at.to_zoned(self.zone.clone()), true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The first scheduled time strictly after `at`.
    pub fn next_after(&self, at: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_next_occurrence(&at.to_zoned(self.zone.clone()), false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// Counts the scheduled times strictly between `after` and `before`, stopping at
    /// `cap`.
    fn count_between(&self, after: Timestamp, before: Timestamp, cap: u32) -> u32 {
        let mut count = 0;
        let mut cursor = after.to_zoned(self.zone.clone());
        while count < cap {
            match self.cron.find_next_occurrence(&cursor, false) {
                Ok(found) if found.timestamp() < before => {
                    count += 1;
                    cursor = found;
                }
                _ => break,
            }
        }
        count
    }
}

/// What the clock says now; see [`due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The scheduled time to run now: the newest scheduled time in (since, now], if
    /// now - it <= deadline.
    pub run: Option<Timestamp>,
    /// Scheduled times in (since, now] that get no run: all older than the newest, plus
    /// the newest itself when it is past the deadline. Counts at most [`MISSED_CAP`]
    /// older times (plus the newest).
    pub missed: u32,
    /// The newest scheduled time in (since, now], run or missed (becomes
    /// status.lastScheduleTime); None if none passed.
    pub last: Option<Timestamp>,
    /// The first scheduled time strictly after now (status.nextScheduleTime; the
    /// controller requeues exactly then). None only if the cron has no time within
    /// croner's search limit (a year of wall-clock steps).
    pub next: Option<Timestamp>,
}

/// Which run is due at `now`. `since` is status.lastScheduleTime, or the object's
/// creationTimestamp for a new schedule; `deadline` is startingDeadlineSeconds.
///
/// After downtime at most one run is made: the newest scheduled time in (since, now],
/// found by one backward cron search from `now` (no enumeration), and only if it is no
/// more than `deadline` old. Every older time in (since, now] is counted as missed; that
/// count stops at [`MISSED_CAP`] so a years-old `since` cannot stall the controller.
pub fn due(clock: &Clock, since: Timestamp, now: Timestamp, deadline: Option<Duration>) -> Due {
    let next = clock.next_after(now);
    let Some(newest) = clock.previous(now).filter(|t| *t > since) else {
        return Due {
            run: None,
            missed: 0,
            last: None,
            next,
        };
    };
    let late = now.duration_since(newest);
    let in_time = match deadline {
        None => true,
        Some(d) => jiff::SignedDuration::try_from(d).map_or(true, |d| late <= d),
    };
    let older = clock.count_between(since, newest, MISSED_CAP);
    Due {
        run: in_time.then_some(newest),
        missed: older + u32::from(!in_time),
        last: Some(newest),
        next,
    }
}

/// Longest Kubernetes object name that is also a DNS-1123 label.
const MAX_LABEL: usize = 63;

/// Whether `name` is a DNS-1123 label: 1..=63 of lowercase letters, digits and hyphens,
/// starting and ending with a letter or digit.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LABEL
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust releases and replicas (the
/// standard library's hasher makes no such promise), written as 10 base-36 digits.
fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..10)
        .map(|_| {
            let d = DIGITS[(h % 36) as usize] as char;
            h /= 36;
            d
        })
        .collect()
}

/// Lowercases and turns anything that is not a letter, digit or hyphen (such as the dots
/// of a DNS subdomain name) into a hyphen, then cuts to `max` and trims hyphens at both
/// ends.
fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    while out.ends_with('-') {
        out.pop();
    }
    out.trim_start_matches('-').to_string()
}

/// `<head>-<tail>` when that is a DNS-1123 label; otherwise the head is cleaned and cut
/// and a hash of the full `<head>-<tail>` goes between it and the (cleaned) tail, so two
/// different heads never end up with the same name. If even the tail does not fit, the
/// whole text is cut and the hash ends it.
fn join_label(head: &str, tail: &str) -> String {
    let joined = format!("{head}-{tail}");
    if is_dns_label(&joined) {
        return joined;
    }
    let hash = short_hash(&joined);
    let tail = clean(tail, MAX_LABEL);
    let budget = MAX_LABEL.saturating_sub(tail.len() + hash.len() + 2);
    if budget >= 1 && !tail.is_empty() {
        let head = clean(head, budget);
        if head.is_empty() {
            format!("{hash}-{tail}")
        } else {
            format!("{head}-{hash}-{tail}")
        }
    } else {
        let head = clean(&joined, MAX_LABEL - hash.len() - 1);
        if head.is_empty() {
            hash
        } else {
            format!("{head}-{hash}")
        }
    }
}

/// The ClusterSnapshot name of the run scheduled at `scheduled`:
/// `<schedule name>-<yyyymmddhhmm in UTC>`, e.g. `orders-nightly-202611220200`. A
/// schedule name longer than 50 characters (or one with dots) is cut and a 10-character
/// hash of the full name goes before the time, keeping the name a DNS-1123 label of at
/// most 63 characters and the time readable.
pub fn run_name(schedule: &str, scheduled: Timestamp) -> String {
    join_label(schedule, &scheduled.strftime("%Y%m%d%H%M").to_string())
}

/// The SnapshotCopy name for `copyTemplates[].name == copy` of a run:
/// `<run name>-<copy name>`, shortened with a hash as in [`run_name`] when it would
/// exceed 63 characters.
pub fn copy_name(run_name: &str, copy: &str) -> String {
    join_label(run_name, copy)
}

/// A run's phase as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Still being created: never deleted, never counted.
    Creating,
    /// Counts toward retention.
    Ready,
    /// Failed or Stalled: only `failed_history_limit` of them are kept.
    Failed,
}

/// One ClusterSnapshot of the schedule (the caller lists only objects that carry the
/// schedule's label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub name: String,
    pub scheduled: Timestamp,
    pub state: RunState,
    /// A SnapshotCopy still reads it (not yet Ready/Failed).
    pub in_use: bool,
}

/// `spec.retention`, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub max_age: Option<Duration>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub failed_history_limit: u32,
}

impl Retention {
    /// Whether any rule for Ready runs is set; without one no Ready run is deleted.
    pub fn has_rules(&self) -> bool {
        self.keep_last.is_some()
            || self.max_age.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
    }
}

/// A calendar bucket of the GFS rules.
#[derive(Debug, Clone, Copy)]
enum Period {
    Day,
    /// ISO 8601 week (Monday to Sunday; week-numbering year).
    Week,
    Month,
}

impl Period {
    /// The bucket `t` falls in, in `zone`.
    fn of(self, t: Timestamp, zone: &TimeZone) -> (i16, i8, i8) {
        let d = t.to_zoned(zone.clone()).date();
        match self {
            Period::Day => (d.year(), d.month(), d.day()),
            Period::Week => {
                let w = d.iso_week_date();
                (w.year(), w.week(), 0)
            }
            Period::Month => (d.year(), d.month(), 0),
        }
    }
}

/// The names of runs retention deletes now, oldest first.
///
/// - Only Ready runs count toward the rules, and a Ready run kept by any rule stays:
///   `keep_last` keeps the newest N; `max_age` keeps those scheduled no longer than that
///   before `now`; `keep_daily` / `keep_weekly` / `keep_monthly` keep the newest Ready
///   run of each of the last N calendar days / ISO weeks / months (in `zone`) that have
///   a Ready run. Periods without one do not use up N (as restic's `--keep-daily` and
///   Velero's proposals do), so a week of downtime does not empty the daily buckets.
/// - With no rule set, no Ready run is deleted.
/// - The newest Ready run is never deleted; neither is a run a copy still reads
///   (`in_use`), nor a Creating run.
/// - Failed runs: the newest `failed_history_limit` stay, older ones go.
///
/// Runs are ordered by `scheduled` (then name, so ties are decided the same way every
/// time).
pub fn prune(runs: &[Run], retention: &Retention, zone: &TimeZone, now: Timestamp) -> Vec<String> {
    let newest_first = |state: RunState| {
        let mut of: Vec<&Run> = runs.iter().filter(|r| r.state == state).collect();
        of.sort_by(|a, b| (b.scheduled, &b.name).cmp(&(a.scheduled, &a.name)));
        of
    };
    let mut doomed: Vec<&Run> = Vec::new();

    let ready = newest_first(RunState::Ready);
    if retention.has_rules() {
        let mut keep = vec![false; ready.len()];
        if let Some(k) = keep.first_mut() {
            *k = true;
        }
        if let Some(n) = retention.keep_last {
            keep.iter_mut().take(n as usize).for_each(|k| *k = true);
        }
        if let Some(age) = retention.max_age {
            let age = jiff::SignedDuration::try_from(age).unwrap_or(jiff::SignedDuration::MAX);
            for (k, run) in keep.iter_mut().zip(&ready) {
                if now.duration_since(run.scheduled) <= age {
                    *k = true;
                }
            }
        }
        let rules = [
            (retention.keep_daily, Period::Day),
            (retention.keep_weekly, Period::Week),
            (retention.keep_monthly, Period::Month),
        ];
        for (n, period) in rules {
            let Some(n) = n else { continue };
            let mut buckets = 0;
            let mut current = None;
            for (k, run) in keep.iter_mut().zip(&ready) {
                if buckets >= n {
                    break;
                }
                let p = period.of(run.scheduled, zone);
                if current != Some(p) {
                    current = Some(p);
                    buckets += 1;
                    *k = true;
                }
            }
        }
        doomed.extend(
            ready
                .iter()
                .zip(&keep)
                .filter(|(run, keep)| !**keep && !run.in_use)
                .map(|(run, _)| *run),
        );
    }

    let failed = newest_first(RunState::Failed);
    doomed.extend(
        failed
            .into_iter()
            .skip(retention.failed_history_limit as usize)
            .filter(|run| !run.in_use),
    );

    doomed.sort_by(|a, b| (a.scheduled, &a.name).cmp(&(b.scheduled, &b.name)));
    doomed.into_iter().map(|r| r.name.clone()).collect()
}

#[cfg(test)]
mod tests;
