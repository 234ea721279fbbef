//! Which script's call this thread is running, set once per call for as long
//! as the host function runs (a thread-local, and a tokio task-local for async
//! host functions). The crate has two other thread-locals, each private to
//! its room: the thread pool a worker thread belongs to (`pool.rs`) and the
//! nesting of host functions the panic hook keeps quiet (`function.rs`).
//!
//! It answers three questions: [`Peer::current`](crate::Peer::current)
//! (the script to call back), whether a call into a script nests inside one
//! of its own calls (the depth bound and readiness skip it), and whether
//! this thread is the script's reader, which reads the pipe itself while it
//! waits for an answer only a reader can bring (or hands reading over, for
//! a wait it cannot serve itself).
//!
//! An async host function has no thread of its own: its task carries the
//! same handle in a tokio task-local ([`in_task`]), which the same three
//! questions consult when the thread has no scope (no reader there).
//!
//! The script is held as an opaque handle (the caller's `Arc` of its link):
//! this module knows nothing of what a script is, so the link can ask it
//! questions without the two importing each other.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// A script, as the scope holds it: its link, type-erased.
pub(crate) type Handle = Arc<dyn Any + Send + Sync>;

/// What a thread serving one of a script's calls knows.
pub(crate) struct Scope {
    /// The script whose call runs.
    pub link: Handle,
    /// Set when this thread is the script's reader.
    pub reader: Option<Rc<dyn Reading>>,
}

/// What the script's reader thread can do while the host function it runs
/// waits for the script.
pub(crate) trait Reading {
    /// Gets another thread to read (for a wait this thread cannot serve by
    /// reading, such as polling a future).
    fn hand_over(&self);
    /// Reads the pipe until `done()` holds or `deadline` passes: delivers
    /// answers, runs here the script's calls made within the host's call
    /// `within` (they nest in it, and see this same reader in their scope),
    /// passes the others on to the pool.
    fn read_until(self: Rc<Self>, within: i64, done: &dyn Fn() -> bool, deadline: Option<Instant>);
}

thread_local! {
    static CURRENT: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

#[cfg(feature = "tokio")]
tokio::task_local! {
    static TASK: Handle;
}

/// Runs the future of an async host function serving the script `link`.
#[cfg(feature = "tokio")]
pub(crate) fn in_task<F: std::future::Future>(
    link: Handle,
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    TASK.scope(link, future)
}

/// The script whose call the current task runs, if any.
fn task() -> Option<Handle> {
    #[cfg(feature = "tokio")]
    {
        TASK.try_with(Arc::clone).ok()
    }
    #[cfg(not(feature = "tokio"))]
    {
        None
    }
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

/// The script whose call this thread runs, if any, as the type it was
/// entered with.
pub(crate) fn current<T: Any + Send + Sync>() -> Option<Arc<T>> {
    let handle = CURRENT
        .with(|c| c.borrow().as_ref().map(|s| Arc::clone(&s.link)))
        .or_else(task)?;
    handle.downcast::<T>().ok()
}

/// Whether `a` is the handle of the script at `b`.
fn same<T>(a: &Handle, b: &Arc<T>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// Whether this thread runs one of the calls of the script at `link`.
pub(crate) fn serves<T>(link: &Arc<T>) -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|s| same(&s.link, link)))
        || task().is_some_and(|h| same(&h, link))
}

/// How this thread stands to the script at `link`: whether it runs one of
/// that script's calls, and whether it is that script's reader. One look at
/// the thread-local for both.
pub(crate) fn within<T>(link: &Arc<T>) -> Within {
    CURRENT.with(
        |c| match c.borrow().as_ref().filter(|s| same(&s.link, link)) {
            Some(s) => Within {
                nested: true,
                reader: s.reader.clone(),
            },
            None => Within {
                nested: task().is_some_and(|h| same(&h, link)),
                reader: None,
            },
        },
    )
}

/// See [`within`].
pub(crate) struct Within {
    /// This thread runs one of the script's calls.
    pub nested: bool,
    /// Set when this thread is the script's reader.
    pub reader: Option<Rc<dyn Reading>>,
}
