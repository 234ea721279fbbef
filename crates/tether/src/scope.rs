//! The one thread-local of the crate: which script's call this thread is
//! running, set once per call for as long as the host function runs.
//!
//! It answers three questions: [`Peer::current`](crate::Peer::current)
//! (the script to call back), whether a call into a script nests inside one
//! of its own calls (the depth bound and readiness skip it), and whether
//! this thread is the script's reader, which must hand reading over before
//! it waits for an answer only a reader can bring.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::link::Link;

/// What a thread serving one of a script's calls knows.
pub(crate) struct Scope {
    /// The script whose call runs.
    pub link: Arc<Link>,
    /// Set when this thread is the script's reader: how to get another
    /// thread to read for it.
    pub hand_over: Option<Rc<dyn Fn()>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Runs `f` inside `scope`, then puts back the scope that was there before
/// (also when `f` panics): a nested call's scope ends with it.
pub(crate) fn enter<T>(scope: Scope, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Scope>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = CURRENT.with(|c| c.borrow_mut().replace(scope));
    let _restore = Restore(previous);
    f()
}

/// The script whose call this thread runs, if any.
pub(crate) fn current_link() -> Option<Arc<Link>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|s| Arc::clone(&s.link)))
}

/// Whether this thread runs one of `link`'s calls.
pub(crate) fn serves(link: &Arc<Link>) -> bool {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.link, link))
    })
}

/// If this thread is `link`'s reader, gets another thread to read.
pub(crate) fn hand_over_reading(link: &Arc<Link>) {
    let hook = CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|s| Arc::ptr_eq(&s.link, link))
            .and_then(|s| s.hand_over.clone())
    });
    if let Some(hook) = hook {
        hook();
    }
}
