//! Time intervals on the timeline and the little set arithmetic the totals need: unions and
//! differences of sorted, disjoint interval lists.

use std::time::Duration;

/// A half-open interval `[start, end)`, as offsets from the timeline's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    /// Where it starts.
    pub start: Duration,
    /// Where it ends (never before `start`).
    pub end: Duration,
}

impl Span {
    /// The interval from `start` to `end`; an `end` before `start` makes it empty at `start`.
    pub fn new(start: Duration, end: Duration) -> Span {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// Its length.
    pub fn len(&self) -> Duration {
        self.end - self.start
    }

    /// Whether it has no length.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The part of it inside `window`, empty when they do not meet.
    pub fn clip(&self, window: Span) -> Span {
        let start = self.start.clamp(window.start, window.end);
        Span::new(start, self.end.min(window.end))
    }
}

/// The union of `spans`: sorted, disjoint, without empty intervals; touching ones are merged.
pub fn union(spans: impl IntoIterator<Item = Span>) -> Vec<Span> {
    let mut sorted: Vec<Span> = spans.into_iter().filter(|s| !s.is_empty()).collect();
    sorted.sort();
    let mut merged: Vec<Span> = Vec::with_capacity(sorted.len());
    for span in sorted {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// `from` minus `remove`, both as returned by [`union`]; the result is sorted and disjoint.
pub fn subtract(from: &[Span], remove: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for span in from {
        let mut cursor = span.start;
        for cut in remove
            .iter()
            .filter(|c| c.end > span.start && c.start < span.end)
        {
            if cut.start > cursor {
                out.push(Span::new(cursor, cut.start));
            }
            cursor = cursor.max(cut.end);
        }
        if cursor < span.end {
            out.push(Span::new(cursor, span.end));
        }
    }
    out
}

/// The total length of disjoint `spans`.
pub fn total(spans: &[Span]) -> Duration {
    spans.iter().map(Span::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(start: u64, end: u64) -> Span {
        Span::new(Duration::from_millis(start), Duration::from_millis(end))
    }

    #[test]
    fn union_merges_overlapping_and_touching_intervals_and_drops_empty_ones() {
        let u = union([ms(5, 7), ms(0, 2), ms(1, 3), ms(3, 4), ms(9, 9)]);
        assert_eq!(u, vec![ms(0, 4), ms(5, 7)]);
        assert_eq!(total(&u), Duration::from_millis(6));
    }

    #[test]
    fn subtract_cuts_holes_and_keeps_the_rest() {
        let left = subtract(&[ms(0, 10), ms(20, 30)], &[ms(2, 3), ms(8, 22), ms(29, 40)]);
        assert_eq!(left, vec![ms(0, 2), ms(3, 8), ms(22, 29)]);
        assert_eq!(subtract(&[ms(0, 10)], &[ms(0, 10)]), vec![]);
        assert_eq!(subtract(&[ms(0, 10)], &[]), vec![ms(0, 10)]);
    }

    #[test]
    fn a_reversed_interval_is_empty_and_clipping_stays_inside_the_window() {
        assert!(ms(5, 3).is_empty());
        assert_eq!(ms(5, 3).len(), Duration::ZERO);
        assert_eq!(ms(0, 10).clip(ms(4, 6)), ms(4, 6));
        assert!(ms(0, 3).clip(ms(4, 6)).is_empty());
    }
}
