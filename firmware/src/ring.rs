//! A fixed-capacity FIFO that drops its oldest entry when full: the node's store of batches
//! waiting for the gateway's acknowledgement.
//!
//! Dropping the oldest (not refusing the newest) keeps the most recent vital signs when an
//! outage outlasts the store; the gateway sees the loss as a sequence gap.

/// Ring buffer of `N` entries of a small `Copy` type.
#[derive(Debug, Clone)]
pub struct Ring<T: Copy + Default, const N: usize> {
    items: [T; N],
    /// Index of the oldest entry.
    head: usize,
    len: usize,
}

impl<T: Copy + Default, const N: usize> Default for Ring<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default, const N: usize> Ring<T, N> {
    pub fn new() -> Self {
        Ring { items: [T::default(); N], head: 0, len: 0 }
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Appends `item`; when full, the oldest entry is dropped and returned.
    pub fn push(&mut self, item: T) -> Option<T> {
        if N == 0 {
            return Some(item);
        }
        let dropped = if self.len == N { self.pop() } else { None };
        let at = (self.head + self.len) % N;
        if let Some(slot) = self.items.get_mut(at) {
            *slot = item;
            self.len += 1;
        }
        dropped
    }

    /// Removes and returns the oldest entry.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.items.get(self.head).copied();
        self.head = (self.head + 1) % N;
        self.len -= 1;
        item
    }

    /// The oldest entry.
    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// The `i`-th oldest entry.
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        self.items.get((self.head + i) % N)
    }

    /// Removes entries from the front while `f` holds.
    pub fn pop_while(&mut self, mut f: impl FnMut(&T) -> bool) -> usize {
        let mut n = 0;
        while self.front().is_some_and(&mut f) {
            self.pop();
            n += 1;
        }
        n
    }

    /// Entries oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.len).filter_map(move |i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_and_overwrite_of_the_oldest() {
        let mut r: Ring<u32, 3> = Ring::new();
        assert!(r.is_empty());
        assert_eq!(r.push(1), None);
        assert_eq!(r.push(2), None);
        assert_eq!(r.push(3), None);
        assert!(r.is_full());
        assert_eq!(r.push(4), Some(1));
        assert_eq!(r.iter().copied().collect::<heapless::Vec<u32, 3>>().as_slice(), &[2, 3, 4]);
        assert_eq!(r.pop_while(|&x| x <= 3), 2);
        assert_eq!(r.front(), Some(&4));
        assert_eq!(r.pop(), Some(4));
        assert_eq!(r.pop(), None);
        // Wraps around many times.
        for i in 0..100 {
            r.push(i);
        }
        assert_eq!(r.iter().copied().collect::<heapless::Vec<u32, 3>>().as_slice(), &[97, 98, 99]);
        assert_eq!(r.get(3), None);
    }
}
