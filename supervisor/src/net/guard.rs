//! Undo-on-drop guards for half-built network objects (DESIGN rule 7, after
//! netavark): each creation step is followed by a guard that undoes it when
//! dropped, unless [`Undo::commit`] is called once the whole object is built.
//! So an error at step *i* (`?` returns early) tears down steps 0..i in
//! reverse order, and the first error is the one reported; teardown errors
//! are logged, not hidden behind it.

/// Runs its action on drop unless committed.
#[must_use = "a guard undoes its step when dropped"]
pub struct Undo<F: FnOnce()> {
    action: Option<F>,
}

impl<F: FnOnce()> Undo<F> {
    /// A guard that runs `action` on drop.
    pub fn new(action: F) -> Undo<F> {
        Undo {
            action: Some(action),
        }
    }

    /// Keeps what was built: the action will not run.
    pub fn commit(mut self) {
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
    fn undoes_in_reverse_order_unless_committed() {
        let log = RefCell::new(Vec::new());
        let build = |fail_at: usize| -> Result<(), usize> {
            let a = Undo::new(|| log.borrow_mut().push("undo a"));
            if fail_at == 1 {
                return Err(1);
            }
            let b = Undo::new(|| log.borrow_mut().push("undo b"));
            if fail_at == 2 {
                return Err(2);
            }
            a.commit();
            b.commit();
            Ok(())
        };
        assert_eq!(build(2), Err(2));
        assert_eq!(*log.borrow(), ["undo b", "undo a"]);
        log.borrow_mut().clear();
        assert_eq!(build(1), Err(1));
        assert_eq!(*log.borrow(), ["undo a"]);
        log.borrow_mut().clear();
        assert_eq!(build(0), Ok(()));
        assert!(log.borrow().is_empty());
    }
}
