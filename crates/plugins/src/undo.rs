//! The undo of an ADD step: a guard that runs its action when dropped,
//! unless the ADD succeeded and called [`Undo::keep`]. Steps are undone in
//! reverse order, as guards drop. The guards of the topic modules
//! ([`crate::veth::undo_host_end`], [`crate::container::undo_link`],
//! [`crate::masquerade::undo_rules`]) and [`crate::ipam::IpamLease`]
//! follow this shape.

/// Runs `action` on drop unless kept.
#[must_use = "dropping the guard runs the undo at once"]
pub struct Undo<F: FnOnce()> {
    action: Option<F>,
}

impl<F: FnOnce()> Undo<F> {
    pub fn new(action: F) -> Undo<F> {
        Undo {
            action: Some(action),
        }
    }

    /// The ADD succeeded: keep what the step made.
    pub fn keep(mut self) {
        self.action = None;
    }
}

impl<F: FnOnce()> Drop for Undo<F> {
    fn drop(&mut self) {
        if let Some(action) = self.action.take() {
            action();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn undoes_in_reverse_unless_kept() {
        let log = RefCell::new(Vec::new());
        {
            let _first = Undo::new(|| log.borrow_mut().push("first"));
            let _second = Undo::new(|| log.borrow_mut().push("second"));
            Undo::new(|| log.borrow_mut().push("kept")).keep();
        }
        assert_eq!(*log.borrow(), ["second", "first"]);
    }
}
