//! The servers a request has tried, for [`super::Group::pick`]: on the
//! stack for the first few attempts (almost every request makes one), in
//! a `Vec` past them, so the usual request allocates nothing for it.

/// Attempts kept without an allocation.
const INLINE: usize = 4;

/// [`super::Lease::id`]s, in the order tried.
#[derive(Debug, Default)]
pub struct Tried {
    inline: [usize; INLINE],
    len: usize,
    spilled: Vec<usize>,
}

impl Tried {
    pub fn push(&mut self, id: usize) {
        if self.spilled.is_empty() && self.len < INLINE {
            self.inline[self.len] = id;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push(id);
        }
        self.len += 1;
    }

    pub fn as_slice(&self) -> &[usize] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_id_in_order_past_the_inline_room() {
        let mut t = Tried::default();
        assert!(t.is_empty() && t.as_slice().is_empty());
        for id in 1..=INLINE * 3 {
            t.push(id * 10);
            let want: Vec<usize> = (1..=id).map(|i| i * 10).collect();
            assert_eq!(t.as_slice(), &want[..]);
            assert_eq!(t.len(), id);
        }
    }
}
