//! A host whose SIGPIPE is not ignored (as in C and C++ programs) must not
//! die when it writes to a script that closed its end: the write fails with
//! EPIPE and the run ends normally. Alone in its binary: it changes the
//! process's signal disposition.

mod common;

use common::*;

#[test]
fn writing_to_a_script_that_closed_its_pipe_is_not_fatal() {
    // SAFETY: restoring the default disposition of SIGPIPE before any thread
    // of this test writes to a pipe; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let outcome = run_with(
        &host(),
        r#"
import os
from tether import _connection, _framing
conn = _connection.connection()
# Ask for a large answer, then close the pipe it would arrive on and exit.
conn._send(_framing.encode(_framing.request(50, "make", [4_000_000])))
os.close(int(os.environ["TETHER_READ_FD"]))
"#,
    )
    .unwrap();
    assert!(outcome.success(), "{}", stderr(&outcome));
}
