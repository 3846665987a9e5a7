//! A fixed-size bit set over pod indexes: which pods a peer admits, which
//! destinations a pod's egress may reach. Rows of 5,000 pods are 79 words,
//! so whole rows are combined with a few dozen word operations.

/// A set of indexes below a fixed length.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct BitSet {
    words: Vec<u64>,
    len: usize,
}

impl BitSet {
    /// No index set.
    pub(crate) fn empty(len: usize) -> Self {
        BitSet {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Adds `i`.
    pub(crate) fn insert(&mut self, i: usize) {
        if i < self.len {
            self.words[i / 64] |= 1 << (i % 64);
        }
    }

    /// Holds `i`?
    pub(crate) fn contains(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Adds every index of `other`.
    pub(crate) fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// Removes every index of `other`.
    pub(crate) fn subtract_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !b;
        }
    }

    /// Every index set in both, in increasing order.
    pub(crate) fn iter_and<'a>(&'a self, other: &'a BitSet) -> impl Iterator<Item = usize> + 'a {
        self.words
            .iter()
            .zip(&other.words)
            .enumerate()
            .flat_map(|(w, (a, b))| Ones(a & b).map(move |bit| w * 64 + bit))
    }

    /// The bound below which indexes are held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every index set, in increasing order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(w, a)| Ones(*a).map(move |bit| w * 64 + bit))
    }

    /// How many indexes are set.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The set bits of one word, lowest first.
struct Ones(u64);

impl Iterator for Ones {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

/// `rows[i]` holds `j` iff the transpose holds `i` in row `j`.
pub(crate) fn transpose(rows: &[BitSet], width: usize) -> Vec<BitSet> {
    let mut out = vec![BitSet::empty(rows.len()); width];
    for (i, row) in rows.iter().enumerate() {
        for j in row.iter() {
            out[j].insert(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_bounds() {
        for len in [0, 1, 63, 64, 65, 130] {
            let mut s = BitSet::empty(len);
            assert_eq!(s.count(), 0);
            s.insert(len);
            assert!(!s.contains(len), "an index past the bound is not held");
            assert_eq!(s.len(), len);
        }
    }

    #[test]
    fn set_union_and_intersection() {
        let mut a = BitSet::empty(130);
        let mut b = BitSet::empty(130);
        for i in [0, 5, 64, 129] {
            a.insert(i);
        }
        for i in [5, 64, 100] {
            b.insert(i);
        }
        assert_eq!(a.iter_and(&b).collect::<Vec<_>>(), vec![5, 64]);
        a.union_with(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 5, 64, 100, 129]);
        a.insert(500);
        assert_eq!(a.count(), 5);
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let mut rows = vec![BitSet::empty(3); 2];
        rows[0].insert(2);
        rows[1].insert(0);
        rows[1].insert(2);
        let t = transpose(&rows, 3);
        assert_eq!(t[0].iter().collect::<Vec<_>>(), vec![1]);
        assert!(t[1].iter().next().is_none());
        assert_eq!(t[2].iter().collect::<Vec<_>>(), vec![0, 1]);
    }
}
