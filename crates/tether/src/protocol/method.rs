//! The reserved method names: every name that starts with `rpc.` belongs
//! to the protocol, never to a host function or an export (see
//! `docs/protocol.md` §5). The Python client keeps the same list in
//! `_framing.py`; a test checks that the two agree.

/// The client's first request: its protocol version (§4).
pub const HELLO: &str = "rpc.hello";
/// The client's notification that the script serves, with its exports
/// (protocol 2).
pub const READY: &str = "rpc.ready";
/// A cancellation notice, in both directions.
pub const CANCEL: &str = "rpc.cancel";
/// The host's notification that the script should stop.
pub const STOP: &str = "rpc.stop";
/// A log record the script forwards to the host.
pub const LOG: &str = "rpc.log";
/// The host's health check: the script answers `true` when it gets to it,
/// in turn with its other calls (protocol 3).
pub const PING: &str = "rpc.ping";

/// Every reserved name, for checks and for the client's list.
pub const ALL: [&str; 6] = [HELLO, READY, CANCEL, STOP, LOG, PING];

/// Whether `name` is reserved for the protocol.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with("rpc.")
}
