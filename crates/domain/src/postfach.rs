//! The delivery rule of OZG § 9: a document placed in the Postfach counts as delivered
//! (bekannt gegeben) on the third day after it was placed — or when the recipient opened
//! it, if that was earlier. Days are calendar days in German civil time.

use time::{Date, Duration, OffsetDateTime, UtcOffset, Weekday};

/// The last Sunday of a month, as a date.
fn last_sunday(year: i32, month: time::Month) -> Option<Date> {
    let next_first = if month == time::Month::December {
        Date::from_calendar_date(year + 1, time::Month::January, 1).ok()?
    } else {
        Date::from_calendar_date(year, month.next(), 1).ok()?
    };
    let mut d = next_first - Duration::days(1);
    while d.weekday() != Weekday::Sunday {
        d -= Duration::days(1);
    }
    Some(d)
}

/// German civil time (CET, or CEST from the last Sunday of March 01:00 UTC to the last
/// Sunday of October 01:00 UTC — the EU rule), without a time zone database.
pub fn german_time(t: OffsetDateTime) -> OffsetDateTime {
    let utc = t.to_offset(UtcOffset::UTC);
    let year = utc.year();
    let summer = match (
        last_sunday(year, time::Month::March),
        last_sunday(year, time::Month::October),
    ) {
        (Some(start), Some(end)) => {
            let start = start.with_hms(1, 0, 0).map(|d| d.assume_utc());
            let end = end.with_hms(1, 0, 0).map(|d| d.assume_utc());
            matches!((start, end), (Ok(s), Ok(e)) if utc >= s && utc < e)
        }
        _ => false,
    };
    let hours = if summer { 2 } else { 1 };
    utc.to_offset(UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC))
}

/// The day on which a Postfach document counts as delivered.
pub fn deemed_delivery(placed: OffsetDateTime, first_opened: Option<OffsetDateTime>) -> Date {
    let third_day = german_time(placed).date() + Duration::days(3);
    match first_opened.map(|o| german_time(o).date()) {
        Some(opened) if opened < third_day => opened,
        _ => third_day,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn third_day_after_placing_unless_opened_earlier() {
        let placed = datetime!(2026-11-25 10:00 UTC);
        assert_eq!(
            deemed_delivery(placed, None),
            time::macros::date!(2026 - 11 - 28)
        );
        let opened = datetime!(2026-11-26 08:00 UTC);
        assert_eq!(
            deemed_delivery(placed, Some(opened)),
            time::macros::date!(2026 - 11 - 26)
        );
        let late = datetime!(2026-12-01 08:00 UTC);
        assert_eq!(
            deemed_delivery(placed, Some(late)),
            time::macros::date!(2026 - 11 - 28)
        );
    }

    #[test]
    fn the_day_is_the_german_calendar_day() {
        // 23:30 UTC in winter is 00:30 the next day in Germany.
        let placed = datetime!(2026-11-25 23:30 UTC);
        assert_eq!(
            deemed_delivery(placed, None),
            time::macros::date!(2026 - 11 - 29)
        );
        // Summer time: +2 hours.
        assert_eq!(
            german_time(datetime!(2026-07-01 22:30 UTC)).date(),
            time::macros::date!(2026 - 07 - 02)
        );
        // The switches of 2026: 29 March and 25 October, at 01:00 UTC.
        assert_eq!(
            german_time(datetime!(2026-03-29 00:59 UTC))
                .offset()
                .whole_hours(),
            1
        );
        assert_eq!(
            german_time(datetime!(2026-03-29 01:00 UTC))
                .offset()
                .whole_hours(),
            2
        );
        assert_eq!(
            german_time(datetime!(2026-10-25 00:59 UTC))
                .offset()
                .whole_hours(),
            2
        );
        assert_eq!(
            german_time(datetime!(2026-10-25 01:00 UTC))
                .offset()
                .whole_hours(),
            1
        );
    }
}
