use super::*;
use croner::JobType;
use jiff::civil::date;
use jiff::tz::AmbiguousOffset;
use jiff::{SignedDuration, ToSpan};
use proptest::prelude::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn clock(schedule: &str, zone: &str) -> Clock {
    Clock::new(schedule, Some(zone)).unwrap()
}

/// Brute force, independent of croner's search: whether the cron schedules a run at the
/// instant `t` (whole minutes only). A matching wall clock time counts, except the
/// second pass of a repeated time for a fixed-time cron; and for a fixed-time cron, the
/// first instant after a gap counts when a skipped wall clock time of the gap matches.
fn scheduled_at(clock: &Clock, t: Timestamp) -> bool {
    let z = t.to_zoned(clock.zone.clone());
    let fixed = clock.cron.determine_job_type() == JobType::FixedTime;
    if clock.cron.is_time_matching(&z).unwrap() {
        if fixed
            && let AmbiguousOffset::Fold { after, .. } =
                clock.zone.to_ambiguous_timestamp(z.datetime()).offset()
            && z.offset() == after
        {
            return false;
        }
        return true;
    }
    if fixed {
        let before = clock.zone.to_offset(t - 1.second());
        let jump = z.offset().seconds() - before.seconds();
        if jump > 0 {
            let end = z.datetime();
            let mut wall = end - SignedDuration::from_secs(i64::from(jump));
            while wall < end {
                if clock.cron.is_time_matching(&wall).unwrap() {
                    return true;
                }
                wall += 1.minute();
            }
        }
    }
    false
}

/// The whole minutes in (from, to].
fn minutes(from: Timestamp, to: Timestamp) -> impl Iterator<Item = Timestamp> {
    let first = from.as_second().div_euclid(60) * 60 + 60;
    (first..=to.as_second())
        .step_by(60)
        .map(|s| Timestamp::from_second(s).unwrap())
}

#[test]
fn clock_errors_name_the_field() {
    let e = Clock::new("0 3 * *", None).unwrap_err();
    assert!(e.starts_with("spec.schedule: "), "{e}");
    let e = Clock::new("0 3 * * *", Some("Mars/Olympus")).unwrap_err();
    assert!(e.starts_with("spec.timeZone: "), "{e}");
    assert_eq!(Clock::new("@daily", None).unwrap().zone, TimeZone::UTC);
}

#[test]
fn a_daily_run_is_due_at_its_time_and_not_before() {
    let c = clock("0 3 * * *", "UTC");
    let since = ts("2026-11-22T00:00:00Z");
    let before = due(&c, since, ts("2026-11-22T02:59:59Z"), None);
    assert_eq!(
        before,
        Due {
            run: None,
            missed: 0,
            last: None,
            next: Some(ts("2026-11-22T03:00:00Z"))
        }
    );
    let at = due(&c, since, ts("2026-11-22T03:00:00Z"), None);
    assert_eq!(
        at,
        Due {
            run: Some(ts("2026-11-22T03:00:00Z")),
            missed: 0,
            last: Some(ts("2026-11-22T03:00:00Z")),
            next: Some(ts("2026-11-23T03:00:00Z"))
        }
    );
    // Once lastScheduleTime is written, the same time is not due again.
    let again = due(
        &c,
        ts("2026-11-22T03:00:00Z"),
        ts("2026-11-22T03:00:30Z"),
        None,
    );
    assert_eq!((again.run, again.last, again.missed), (None, None, 0));
    // In Berlin, 03:00 local is 02:00 UTC in winter.
    let berlin = due(
        &clock("0 3 * * *", "Europe/Berlin"),
        since,
        ts("2026-11-22T02:00:00Z"),
        None,
    );
    assert_eq!(berlin.run, Some(ts("2026-11-22T02:00:00Z")));
}

/// The operator is down across 11:00 and 12:00 (last run 10:00) and comes back at
/// 12:30: within the deadline it makes the 12:00 run and counts 11:00 as missed; past
/// the deadline it makes none and counts both.
#[test]
fn missed_runs_against_the_deadline() {
    let c = clock("0 * * * *", "UTC");
    let since = ts("2026-11-22T10:00:00Z");
    let now = ts("2026-11-22T12:30:00Z");
    let within = due(&c, since, now, Some(Duration::from_secs(3600)));
    assert_eq!(within.run, Some(ts("2026-11-22T12:00:00Z")));
    assert_eq!(within.missed, 1);
    assert_eq!(within.last, Some(ts("2026-11-22T12:00:00Z")));
    assert_eq!(within.next, Some(ts("2026-11-22T13:00:00Z")));

    let beyond = due(&c, since, now, Some(Duration::from_secs(600)));
    assert_eq!(beyond.run, None);
    assert_eq!(beyond.missed, 2);
    assert_eq!(beyond.last, Some(ts("2026-11-22T12:00:00Z")));
    assert_eq!(beyond.next, Some(ts("2026-11-22T13:00:00Z")));

    // Exactly at the deadline still runs; no deadline always runs.
    let edge = due(&c, since, now, Some(Duration::from_secs(1800)));
    assert_eq!((edge.run.is_some(), edge.missed), (true, 1));
    let none = due(&c, since, now, None);
    assert_eq!((none.run.is_some(), none.missed), (true, 1));
}

/// A years-old lastScheduleTime with a per-minute cron: the newest time is found
/// without enumerating and the missed count stops at the cap.
#[test]
fn missed_count_is_capped() {
    let c = clock("* * * * *", "Europe/Berlin");
    let start = std::time::Instant::now();
    let d = due(
        &c,
        ts("2016-01-01T00:00:00Z"),
        ts("2026-11-22T12:30:10Z"),
        None,
    );
    assert_eq!(d.run, Some(ts("2026-11-22T12:30:00Z")));
    assert_eq!(d.missed, MISSED_CAP);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

/// Walks `due` minute by minute over the local day `day` in `zone` (feeding `last` back
/// as `since`, as the controller writes lastScheduleTime) and returns the runs made.
/// Also checks that each run happens exactly at the `next` reported the minute before,
/// so requeueing at `next` never misses one.
fn runs_over_day(schedule: &str, zone: &str, day: jiff::civil::Date) -> Vec<Timestamp> {
    let c = clock(schedule, zone);
    let tz = c.zone.clone();
    let start = day.to_zoned(tz.clone()).unwrap().timestamp();
    let end = day.tomorrow().unwrap().to_zoned(tz).unwrap().timestamp();
    let mut since = start - 1.second();
    let mut runs = Vec::new();
    let mut promised = c.next_after(since);
    for now in minutes(since, end - 1.second()) {
        let d = due(&c, since, now, Some(Duration::from_secs(60)));
        assert_eq!(d.missed, 0, "{schedule} in {zone} at {now}");
        if let Some(run) = d.run {
            assert_eq!(run, now, "runs on the minute it is due");
            assert_eq!(promised, Some(run), "the run was announced as next");
            runs.push(run);
        }
        if let Some(last) = d.last {
            since = last;
        }
        promised = d.next;
        assert!(d.next.unwrap() > now);
    }
    runs
}

#[test]
fn dst_days_run_a_fixed_time_cron_exactly_once() {
    let cases = [
        // Spring forward: 02:30 does not exist; it runs right after the gap (03:00 local).
        ("Europe/Berlin", date(2026, 3, 29), "2026-03-29T01:00:00Z"),
        ("America/New_York", date(2026, 3, 8), "2026-03-08T07:00:00Z"),
        // Fall back: Berlin repeats 02:00-03:00, so 02:30 comes twice; it runs once, at
        // the first pass (CEST). New York repeats 01:00-02:00; its 02:30 is single.
        ("Europe/Berlin", date(2026, 10, 25), "2026-10-25T00:30:00Z"),
        (
            "America/New_York",
            date(2026, 11, 1),
            "2026-11-01T07:30:00Z",
        ),
    ];
    let mut names = std::collections::BTreeSet::new();
    for (zone, day, expected) in cases {
        let runs = runs_over_day("30 2 * * *", zone, day);
        assert_eq!(runs, vec![ts(expected)], "{zone} {day}");
        // The days before and after run at 02:30 local, once each.
        for other in [day.yesterday().unwrap(), day.tomorrow().unwrap()] {
            let runs = runs_over_day("30 2 * * *", zone, other);
            assert_eq!(runs.len(), 1, "{zone} {other}");
            let local = runs[0].to_zoned(TimeZone::get(zone).unwrap()).datetime();
            assert_eq!(local.time(), jiff::civil::time(2, 30, 0, 0));
            assert!(names.insert(run_name("nightly", runs[0])));
        }
        assert!(names.insert(run_name("nightly", runs[0])));
    }
    assert_eq!(names.len(), 12);
}

/// The repeated hour in New York (01:00-02:00 local on the first Sunday of November):
/// a fixed 01:30 runs once, an interval cron runs on both passes.
#[test]
fn dst_repeat_runs_fixed_once_and_intervals_twice() {
    let day = date(2026, 11, 1);
    assert_eq!(
        runs_over_day("30 1 * * *", "America/New_York", day),
        vec![ts("2026-11-01T05:30:00Z")]
    );
    let hourly = runs_over_day("0 * * * *", "America/New_York", day);
    assert_eq!(hourly.len(), 25, "{hourly:?}");
    let berlin = runs_over_day("*/30 * * * *", "Europe/Berlin", date(2026, 10, 25));
    assert_eq!(berlin.len(), 50);
    let spring = runs_over_day("*/30 * * * *", "Europe/Berlin", date(2026, 3, 29));
    assert_eq!(spring.len(), 46);
    let names: std::collections::BTreeSet<_> =
        hourly.iter().map(|t| run_name("hourly", *t)).collect();
    assert_eq!(names.len(), 25);
}

#[test]
fn run_names_follow_the_contract() {
    assert_eq!(
        run_name("orders-nightly", ts("2026-11-22T02:00:00Z")),
        "orders-nightly-202611220200"
    );
    // The time is UTC whatever the zone.
    let berlin = "2026-11-22T03:00:00+01:00[Europe/Berlin]"
        .parse::<jiff::Zoned>()
        .unwrap()
        .timestamp();
    assert_eq!(run_name("a", berlin), "a-202611220200");
    let fifty = "s".repeat(50);
    assert_eq!(
        run_name(&fifty, ts("2026-11-22T02:00:00Z")),
        format!("{fifty}-202611220200")
    );
    let long_a = format!("{}a", "s".repeat(60));
    let long_b = format!("{}b", "s".repeat(60));
    let a = run_name(&long_a, ts("2026-11-22T02:00:00Z"));
    let b = run_name(&long_b, ts("2026-11-22T02:00:00Z"));
    assert_eq!(a.len(), 63);
    assert!(is_dns_label(&a) && is_dns_label(&b));
    assert!(a.ends_with("-202611220200"));
    assert_ne!(a, b);
    // Dots (a valid object name) are not a valid label: they go, with a hash.
    let dotted = run_name("team.orders", ts("2026-11-22T02:00:00Z"));
    assert!(is_dns_label(&dotted), "{dotted}");
    assert_ne!(dotted, run_name("team-orders", ts("2026-11-22T02:00:00Z")));

    assert_eq!(
        copy_name("orders-nightly-202611220200", "dr"),
        "orders-nightly-202611220200-dr"
    );
    let c = copy_name(&a, "dr-eu-west-1");
    assert!(is_dns_label(&c) && c.ends_with("-dr-eu-west-1"), "{c}");
    assert_ne!(c, copy_name(&b, "dr-eu-west-1"));
    let long_copy = "c".repeat(63);
    let c = copy_name(&a, &long_copy);
    assert!(is_dns_label(&c), "{c}");
}

fn run(name: &str, scheduled: &str, state: RunState) -> Run {
    Run {
        name: name.to_string(),
        scheduled: ts(scheduled),
        state,
        in_use: false,
    }
}

/// Ready runs daily at 02:00 UTC from 2026-01-01 for `days` days, named by day number.
fn daily(days: i64) -> Vec<Run> {
    (0..days)
        .map(|i| Run {
            name: format!("d{i:03}"),
            scheduled: ts("2026-01-01T02:00:00Z") + SignedDuration::from_hours(24 * i),
            state: RunState::Ready,
            in_use: false,
        })
        .collect()
}

fn kept(runs: &[Run], retention: &Retention, now: Timestamp) -> Vec<String> {
    let gone = prune(runs, retention, &TimeZone::UTC, now);
    runs.iter()
        .filter(|r| !gone.contains(&r.name))
        .map(|r| r.name.clone())
        .collect()
}

#[test]
fn without_rules_no_ready_run_goes() {
    let runs = daily(30);
    let r = Retention {
        failed_history_limit: 3,
        ..Default::default()
    };
    assert!(prune(&runs, &r, &TimeZone::UTC, ts("2027-01-01T00:00:00Z")).is_empty());
}

#[test]
fn keep_last_keeps_the_newest_ready_ones() {
    let mut runs = daily(10);
    runs.push(run("creating", "2026-01-11T02:00:00Z", RunState::Creating));
    runs.push(run("failed", "2026-01-10T03:00:00Z", RunState::Failed));
    let r = Retention {
        keep_last: Some(3),
        failed_history_limit: 1,
        ..Default::default()
    };
    let now = ts("2026-01-11T03:00:00Z");
    assert_eq!(
        kept(&runs, &r, now),
        ["d007", "d008", "d009", "creating", "failed"]
    );
    assert_eq!(
        prune(&runs, &r, &TimeZone::UTC, now),
        ["d000", "d001", "d002", "d003", "d004", "d005", "d006"]
    );
    // keepLast 0 still keeps the newest Ready run; a copy's source stays too.
    runs[2].in_use = true;
    let r = Retention {
        keep_last: Some(0),
        ..r
    };
    assert_eq!(kept(&runs, &r, now), ["d002", "d009", "creating", "failed"]);
}

#[test]
fn max_age_keeps_the_recent_ones_and_always_the_newest() {
    let runs = daily(10);
    let r = Retention {
        max_age: Some(Duration::from_secs(72 * 3600)),
        ..Default::default()
    };
    // now = d009 + 1h: d009 (1h), d008 (25h), d007 (49h), d006 (73h, gone).
    let now = ts("2026-01-10T03:00:00Z");
    assert_eq!(kept(&runs, &r, now), ["d007", "d008", "d009"]);
    // Long after: only the newest survives.
    assert_eq!(kept(&runs, &r, ts("2027-01-01T00:00:00Z")), ["d009"]);
}

#[test]
fn keep_daily_takes_the_newest_of_each_day_that_has_one() {
    // Two runs a day (02:00 and 14:00) for 5 days, then a gap of 3 days, then one more.
    let mut runs: Vec<Run> = (0..5)
        .flat_map(|d| {
            [2, 14].map(move |h| Run {
                name: format!("r{d}-{h:02}"),
                scheduled: ts("2026-01-01T00:00:00Z") + SignedDuration::from_hours(24 * d + h),
                state: RunState::Ready,
                in_use: false,
            })
        })
        .collect();
    runs.push(run("last", "2026-01-09T02:00:00Z", RunState::Ready));
    let r = Retention {
        keep_daily: Some(3),
        ..Default::default()
    };
    let now = ts("2026-01-09T03:00:00Z");
    // The empty days do not use up the count.
    assert_eq!(kept(&runs, &r, now), ["r3-14", "r4-14", "last"]);
    // Days are local: in New York 2026-01-05T02:00Z is still the 4th.
    let gone = prune(&runs, &r, &TimeZone::get("America/New_York").unwrap(), now);
    let left: Vec<_> = runs
        .iter()
        .filter(|r| !gone.contains(&r.name))
        .map(|r| &r.name)
        .collect();
    assert_eq!(left, ["r4-02", "r4-14", "last"]);
}

#[test]
fn keep_weekly_and_monthly_use_iso_weeks_and_months() {
    let runs = daily(70); // 2026-01-01 (Thursday) .. 2026-03-11
    let now = ts("2026-03-12T00:00:00Z");
    let weekly = Retention {
        keep_weekly: Some(3),
        ..Default::default()
    };
    // Newest of ISO weeks 11 (Mar 9-11), 10 (ends Sun Mar 8), 9 (ends Sun Mar 1).
    let names = |v: Vec<String>| {
        v.iter()
            .map(|n| {
                let i: i64 = n[1..].parse().unwrap();
                (date(2026, 1, 1) + i.days()).to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(kept(&runs, &weekly, now)),
        ["2026-03-01", "2026-03-08", "2026-03-11"]
    );
    let monthly = Retention {
        keep_monthly: Some(12),
        ..Default::default()
    };
    assert_eq!(
        names(kept(&runs, &monthly, now)),
        ["2026-01-31", "2026-02-28", "2026-03-11"]
    );
}

#[test]
fn gfs_rules_combine_as_a_union() {
    let runs = daily(70);
    let now = ts("2026-03-12T00:00:00Z");
    let r = Retention {
        keep_last: Some(2),
        keep_daily: Some(4),
        keep_weekly: Some(3),
        keep_monthly: Some(2),
        failed_history_limit: 3,
        ..Default::default()
    };
    let k = kept(&runs, &r, now);
    let days: Vec<String> = k
        .iter()
        .map(|n| (date(2026, 1, 1) + n[1..].parse::<i64>().unwrap().days()).to_string())
        .collect();
    assert_eq!(
        days,
        // monthly Feb 28; weekly Mar 1, Mar 8; daily Mar 8..11 (last 2 included).
        [
            "2026-02-28",
            "2026-03-01",
            "2026-03-08",
            "2026-03-09",
            "2026-03-10",
            "2026-03-11"
        ]
    );
    // Adding maxAge 10 days keeps Mar 2..11 as well.
    let with_age = Retention {
        max_age: Some(Duration::from_secs(10 * 86400)),
        ..r
    };
    assert_eq!(kept(&runs, &with_age, now).len(), 2 + 10);
}

#[test]
fn failed_history_keeps_the_newest_failed_runs() {
    let mut runs: Vec<Run> = (0..6)
        .map(|i| Run {
            name: format!("f{i}"),
            scheduled: ts("2026-01-01T00:00:00Z") + SignedDuration::from_hours(i),
            state: RunState::Failed,
            in_use: false,
        })
        .collect();
    runs.push(run("ok", "2026-01-02T00:00:00Z", RunState::Ready));
    let r = Retention {
        keep_last: Some(1),
        failed_history_limit: 2,
        ..Default::default()
    };
    assert_eq!(
        prune(&runs, &r, &TimeZone::UTC, ts("2026-01-03T00:00:00Z")),
        ["f0", "f1", "f2", "f3"]
    );
    let none = Retention {
        failed_history_limit: 0,
        ..Default::default()
    };
    assert_eq!(
        prune(&runs, &none, &TimeZone::UTC, ts("2026-01-03T00:00:00Z")).len(),
        6
    );
}

const CRONS: &[&str] = &[
    "0 3 * * *",
    "30 2 * * *",
    "0 2 * * *",
    "15 1 * * 0",
    "45 23 31 * *",
    "0 0 29 2 *",
    "*/15 * * * *",
    "*/7 * * * *",
    "0 */6 * * *",
    "30 1-3 * * *",
    "0 9-17 * * 1-5",
    "5,35 2 * * *",
    "0 0 1 * *",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@yearly",
];

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
];

/// 2024-01-01 .. 2030-01-01, in seconds.
const FROM: i64 = 1_704_067_200;
const TO: i64 = 1_893_456_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn due_is_consistent_with_the_cron(
        cron in 0..CRONS.len(),
        zone in 0..ZONES.len(),
        now in FROM..TO,
        back in prop_oneof![0i64..3 * 86400, 0i64..400 * 86400],
        deadline in proptest::option::of(0u64..7 * 86400),
    ) {
        let c = clock(CRONS[cron], ZONES[zone]);
        let now = Timestamp::from_second(now).unwrap();
        let since = now - SignedDuration::from_secs(back);
        let deadline = deadline.map(Duration::from_secs);
        let d = due(&c, since, now, deadline);
        let ctx = format!("{} in {} since {since} now {now}: {d:?}", CRONS[cron], ZONES[zone]);

        if let Some(last) = d.last {
            prop_assert!(since < last && last <= now, "{}", ctx);
            prop_assert!(scheduled_at(&c, last), "{}", ctx);
            // No scheduled time in (last, now].
            prop_assert!(c.next_after(last).is_none_or(|t| t > now), "{}", ctx);
            let late = now.duration_since(last);
            let in_time = deadline.is_none_or(|dl| late <= SignedDuration::try_from(dl).unwrap());
            prop_assert_eq!(d.run, in_time.then_some(last), "{}", ctx);
        } else {
            prop_assert_eq!(d.run, None, "{}", ctx);
            prop_assert_eq!(d.missed, 0, "{}", ctx);
        }

        let next = d.next.unwrap();
        prop_assert!(next > now, "{}", ctx);
        prop_assert!(scheduled_at(&c, next), "{}", ctx);
        // Brute force: nothing scheduled strictly between now and next (first two days).
        let horizon = (next - 1.second()).min(now + SignedDuration::from_hours(48));
        for t in minutes(now, horizon) {
            prop_assert!(!scheduled_at(&c, t), "{} scheduled at {}", ctx, t);
        }
        // Brute force over short spans: every scheduled time in (since, now] is either
        // run or missed.
        if back <= 3 * 86400 {
            let all: Vec<Timestamp> = minutes(since, now).filter(|t| scheduled_at(&c, *t)).collect();
            prop_assert_eq!(all.last().copied(), d.last, "{}", ctx);
            prop_assert_eq!(all.len() as u32, d.missed + u32::from(d.run.is_some()), "{}", ctx);
        }
    }

    #[test]
    fn run_names_are_labels_and_distinct(
        a in "[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?",
        b in "[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?",
        ta in FROM..TO,
        tb in FROM..TO,
        copy in "[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
    ) {
        let (ta, tb) = (Timestamp::from_second(ta).unwrap(), Timestamp::from_second(tb).unwrap());
        let na = run_name(&a, ta);
        prop_assert!(is_dns_label(&na), "{:?}", na);
        prop_assert!(na.ends_with(&ta.strftime("-%Y%m%d%H%M").to_string()));
        prop_assert_eq!(&na, &run_name(&a, ta));
        let same_minute = ta.as_second() / 60 == tb.as_second() / 60;
        if a != b || !same_minute {
            prop_assert_ne!(&na, &run_name(&b, tb));
        }
        let ca = copy_name(&na, &copy);
        prop_assert!(is_dns_label(&ca), "{:?}", ca);
        if a != b || !same_minute {
            prop_assert_ne!(ca, copy_name(&run_name(&b, tb), &copy));
        }
    }
}

fn state() -> impl Strategy<Value = RunState> {
    prop_oneof![
        6 => Just(RunState::Ready),
        1 => Just(RunState::Creating),
        2 => Just(RunState::Failed),
    ]
}

fn runs() -> impl Strategy<Value = Vec<Run>> {
    prop::collection::vec((0i64..90 * 24, state(), prop::bool::weighted(0.15)), 0..40).prop_map(
        |v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (h, state, in_use))| Run {
                    name: format!("r{i:02}"),
                    scheduled: ts("2026-01-01T00:00:00Z") + SignedDuration::from_hours(h),
                    state,
                    in_use,
                })
                .collect()
        },
    )
}

fn retention() -> impl Strategy<Value = Retention> {
    use proptest::option::of;
    (
        of(0u32..10),
        of(1u64..60 * 86400),
        of(0u32..10),
        of(0u32..6),
        of(0u32..4),
        0u32..5,
    )
        .prop_map(
            |(keep_last, age, keep_daily, keep_weekly, keep_monthly, failed)| Retention {
                keep_last,
                max_age: age.map(Duration::from_secs),
                keep_daily,
                keep_weekly,
                keep_monthly,
                failed_history_limit: failed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prune_keeps_what_it_must(
        runs in runs(),
        r in retention(),
        zone in 0..ZONES.len(),
        now_h in 90i64 * 24..120 * 24,
    ) {
        let zone = TimeZone::get(ZONES[zone]).unwrap();
        let now = ts("2026-01-01T00:00:00Z") + SignedDuration::from_hours(now_h);
        let gone = prune(&runs, &r, &zone, now);
        let survivors: Vec<Run> = runs.iter().filter(|x| !gone.contains(&x.name)).cloned().collect();
        prop_assert_eq!(survivors.len() + gone.len(), runs.len(), "names are unique and real");

        let newest_ready = runs
            .iter()
            .filter(|x| x.state == RunState::Ready)
            .max_by_key(|x| (x.scheduled, &x.name));
        if let Some(newest) = newest_ready {
            prop_assert!(!gone.contains(&newest.name));
        }
        for x in &runs {
            if x.in_use || x.state == RunState::Creating {
                prop_assert!(!gone.contains(&x.name), "{:?}", x);
            }
        }
        let failed_left = survivors.iter().filter(|x| x.state == RunState::Failed && !x.in_use).count();
        prop_assert!(failed_left <= r.failed_history_limit as usize);
        if !r.has_rules() {
            prop_assert!(gone.iter().all(|n| runs.iter().any(|x| &x.name == n && x.state == RunState::Failed)));
        }
        // Idempotent.
        prop_assert!(prune(&survivors, &r, &zone, now).is_empty());
    }

    #[test]
    fn keep_last_alone_keeps_exactly_n(runs in runs(), n in 1u32..10, failed in 0u32..4) {
        let r = Retention { keep_last: Some(n), failed_history_limit: failed, ..Default::default() };
        let gone = prune(&runs, &r, &TimeZone::UTC, ts("2026-06-01T00:00:00Z"));
        let mut ready: Vec<&Run> = runs.iter().filter(|x| x.state == RunState::Ready).collect();
        ready.sort_by(|a, b| (b.scheduled, &b.name).cmp(&(a.scheduled, &a.name)));
        let newest: Vec<&str> = ready.iter().take(n as usize).map(|x| x.name.as_str()).collect();
        let left: Vec<&Run> = ready.iter().copied().filter(|x| !gone.contains(&x.name)).collect();
        let extra = ready.iter().skip(n as usize).filter(|x| x.in_use).count();
        prop_assert_eq!(left.len(), ready.len().min(n as usize) + extra);
        prop_assert!(newest.iter().all(|name| !gone.contains(&name.to_string())));
    }
}

#[test]
fn scheduled_at_sees_gaps_and_repeats() {
    // Sanity of the brute-force oracle itself.
    let c = clock("30 2 * * *", "Europe/Berlin");
    assert!(scheduled_at(&c, ts("2026-03-29T01:00:00Z")));
    assert!(!scheduled_at(&c, ts("2026-03-29T01:01:00Z")));
    assert!(scheduled_at(&c, ts("2026-10-25T00:30:00Z")));
    assert!(!scheduled_at(&c, ts("2026-10-25T01:30:00Z")));
    let every = clock("*/30 * * * *", "Europe/Berlin");
    assert!(scheduled_at(&every, ts("2026-10-25T01:30:00Z")));
}
