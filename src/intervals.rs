//! Sets of integers as sorted, disjoint, non-adjacent inclusive ranges: the
//! one implementation behind port sets (`u16`) and address sets (`u128`).

use std::fmt;

/// One inclusive range as palisade writes it: `8080-8090`, or `80` when
/// it holds a single value.
pub struct RangeText<'a, T>(pub &'a T, pub &'a T);

impl<T: fmt::Display + PartialEq> fmt::Display for RangeText<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == self.1 {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{}-{}", self.0, self.1)
        }
    }
}

/// Writes ranges the way every range set in palisade reads: `80,8080-8090`.
pub fn write_ranges<T: fmt::Display + PartialEq>(
    f: &mut fmt::Formatter<'_>,
    ranges: &[(T, T)],
) -> fmt::Result {
    for (i, (s, e)) in ranges.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{}", RangeText(s, e))?;
    }
    Ok(())
}

/// An integer type a range set can hold.
pub trait Bound: Copy + Ord {
    /// The next value, or `None` at the top.
    fn succ(self) -> Option<Self>;
    /// The previous value, or `None` at the bottom.
    fn pred(self) -> Option<Self>;
}

impl Bound for u16 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

impl Bound for u128 {
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn pred(self) -> Option<Self> {
        self.checked_sub(1)
    }
}

/// A set of integers as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IntervalSet<T>(Vec<(T, T)>);

impl<T> Default for IntervalSet<T> {
    fn default() -> Self {
        IntervalSet(Vec::new())
    }
}

impl<T: Bound> IntervalSet<T> {
    /// The set `start..=end` (empty when `start > end`).
    pub fn range(start: T, end: T) -> Self {
        let mut s = Self::default();
        s.insert(start, end);
        s
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[(T, T)] {
        &self.0
    }

    /// No value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `start..=end`, merging with overlapping or adjacent ranges.
    pub fn insert(&mut self, start: T, end: T) {
        if start > end {
            return;
        }
        // Two ranges merge when they overlap or touch.
        let apart = |a_end: T, b_start: T| a_end.succ().is_some_and(|n| n < b_start);
        let (mut start, mut end) = (start, end);
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &(s, e) in &self.0 {
            if apart(e, start) {
                out.push((s, e));
            } else if apart(end, s) {
                if !placed {
                    out.push((start, end));
                    placed = true;
                }
                out.push((s, e));
            } else {
                start = start.min(s);
                end = end.max(e);
            }
        }
        if !placed {
            out.push((start, end));
        }
        self.0 = out;
    }

    /// Does the set hold `v`?
    pub fn contains(&self, v: T) -> bool {
        self.0.iter().any(|&(s, e)| s <= v && v <= e)
    }

    /// Values in either set.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for &(s, e) in &other.0 {
            out.insert(s, e);
        }
        out
    }

    /// Values in both sets.
    pub fn intersect(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (s, e) = (a.0.max(b.0), a.1.min(b.1));
            if s <= e {
                out.push((s, e));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        IntervalSet(out)
    }

    /// Values of `self` not in `other`.
    pub fn subtract(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        for &(s, e) in &self.0 {
            let mut cur = Some(s);
            for &(os, oe) in &other.0 {
                let Some(c) = cur else { break };
                if oe < c || os > e {
                    continue;
                }
                if os > c
                    && let Some(p) = os.pred()
                {
                    out.push((c, p));
                }
                cur = oe.succ().filter(|n| *n <= e);
            }
            if let Some(c) = cur {
                out.push((c, e));
            }
        }
        IntervalSet(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_touching_ranges_and_handles_the_edges() {
        let mut s = IntervalSet::<u16>::default();
        s.insert(5, 9);
        s.insert(10, 12);
        s.insert(0, 0);
        s.insert(u16::MAX, u16::MAX);
        assert_eq!(s.ranges(), &[(0, 0), (5, 12), (u16::MAX, u16::MAX)]);
        let all = IntervalSet::range(0u16, u16::MAX);
        let hole = all.subtract(&s);
        assert_eq!(hole.ranges(), &[(1, 4), (13, u16::MAX - 1)]);
        assert_eq!(hole.union(&s), all);
        assert!(hole.intersect(&s).is_empty());
        let wide = IntervalSet::range(0u128, u128::MAX);
        assert!(wide.subtract(&wide).is_empty());
        assert_eq!(
            wide.subtract(&IntervalSet::range(0, 0)).ranges(),
            &[(1, u128::MAX)]
        );
    }
}
