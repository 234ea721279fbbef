//! The tokio runtime a script's async host functions run on: the one the
//! script was spawned from (feature `tokio`). Without the feature there is
//! never one, and no function is async.

#[cfg(feature = "tokio")]
pub(crate) type Runtime = tokio::runtime::Handle;

/// Stands in for a runtime handle when tokio is not compiled in; never made.
#[cfg(not(feature = "tokio"))]
#[derive(Clone)]
pub(crate) enum Runtime {}

/// The runtime the calling code runs in, if any.
pub(crate) fn current() -> Option<Runtime> {
    #[cfg(feature = "tokio")]
    {
        tokio::runtime::Handle::try_current().ok()
    }
    #[cfg(not(feature = "tokio"))]
    {
        None
    }
}

/// Whether this thread runs a current-thread tokio runtime: blocking it
/// stops everything that runtime would run.
pub(crate) fn is_current_thread() -> bool {
    #[cfg(feature = "tokio")]
    {
        tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
    }
    #[cfg(not(feature = "tokio"))]
    {
        false
    }
}
