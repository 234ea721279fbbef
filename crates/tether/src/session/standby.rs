//! The reader thread's loop, its reading for itself while a host function
//! it runs waits for the script, and the standby reader: a second thread
//! that reads for the script while the reader thread runs a call that
//! blocks (see the module docs of [`session`](super)).

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Call, Core};
use crate::scope::Reading;
use crate::sync::lock;
use crate::watchdog;

/// How often the standby reader checks whether the inline call returned.
const STANDBY_POLL: Duration = Duration::from_millis(1);

/// The standby reader's state, under `Core::standby`.
#[derive(Default)]
pub(super) struct Standby {
    /// The inline call (by its sequence number) to read during.
    wanted: u64,
    exit: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The reader thread: reads, runs calls, and when serving ends, reports.
pub(super) fn serve(core: Arc<Core>) {
    let _serving = crate::spin::Serving::start();
    let reader: Rc<dyn Reading> = Rc::new(ReaderThread(Arc::clone(&core)));
    loop {
        let work = {
            let mut rs = lock(&core.read);
            if core.ended.load(Ordering::Acquire) {
                break;
            }
            match rs.next_work(&core, None, None) {
                Ok(work) => work,
                Err(end) => {
                    core.finish(&mut rs, end);
                    break;
                }
            }
        };
        if let Some(work) = work {
            core.run(work, Some(&reader));
        }
    }
    let standby = {
        let mut sb = lock(&core.standby);
        sb.exit = true;
        sb.thread.take()
    };
    core.standby_cv.notify_all();
    if let Some(thread) = standby {
        let _ = thread.join();
    }
}

/// The standby reader's thread.
fn standby(core: Arc<Core>) {
    let mut served = 0;
    loop {
        let seq = {
            let mut sb = lock(&core.standby);
            loop {
                if sb.exit {
                    return;
                }
                if sb.wanted != served {
                    break sb.wanted;
                }
                sb = core.standby_cv.wait(sb).unwrap_or_else(|e| e.into_inner());
            }
        };
        served = seq;
        tracing::trace!(pid = core.link.pid, "standby reader takes over");
        while core.inline_seq.load(Ordering::SeqCst) == seq {
            let work = {
                let mut rs = lock(&core.read);
                if core.ended.load(Ordering::Acquire) {
                    return;
                }
                match rs.next_work(&core, Some(Instant::now() + STANDBY_POLL), None) {
                    Ok(work) => work,
                    Err(end) => {
                        core.finish(&mut rs, end);
                        return;
                    }
                }
            };
            if let Some(work) = work {
                core.run(work, None);
            }
        }
    }
}

/// The reader thread, as the host functions it runs see it (through their
/// scope).
struct ReaderThread(Arc<Core>);

impl Reading for ReaderThread {
    fn hand_over(&self) {
        self.0.hand_over(self.0.inline_seq.load(Ordering::SeqCst));
    }

    fn read_until(self: Rc<Self>, within: i64, done: &dyn Fn() -> bool, deadline: Option<Instant>) {
        let core = Arc::clone(&self.0);
        core.read_for_itself(self, within, done, deadline);
    }
}

impl watchdog::Watched for Core {
    fn tick(self: Arc<Self>) -> bool {
        let seq = self.inline_seq.load(Ordering::SeqCst);
        if seq.is_multiple_of(2) {
            return false;
        }
        if self.watched.swap(seq, Ordering::AcqRel) == seq {
            // The same inline call as a tick ago: it blocks reading.
            self.hand_over(seq);
        }
        true
    }
}

impl Core {
    /// The reader thread, inside a host function that waits for the answer
    /// to its call `within`, reads until `done()` (see
    /// [`Reading::read_until`]).
    fn read_for_itself(
        self: &Arc<Core>,
        reader: Rc<dyn Reading>,
        within: i64,
        done: &dyn Fn() -> bool,
        deadline: Option<Instant>,
    ) {
        // The function's own code pauses: the watchdog leaves a reader
        // alone (an even count), and a standby reader stops.
        self.inline_seq.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        while !done() {
            let work = {
                let mut rs = lock(&self.read);
                if self.ended.load(Ordering::Acquire) || done() {
                    break;
                }
                match rs.next_work(self, deadline, Some(done)) {
                    Ok(Some(work)) => work,
                    Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => break,
                    Ok(None) => continue,
                    Err(end) => {
                        self.finish(&mut rs, end);
                        break;
                    }
                }
            };
            // A call made within the one this function waits for nests in
            // it: it runs here, as the script waits for it. Any other may
            // need what the waiting function holds: it runs elsewhere.
            let nested = matches!(&work.call, Call::Native { within: Some(w), .. } if *w == within);
            self.run(work, Some(&reader).filter(|_| nested));
        }
        self.inline_seq.fetch_add(1, Ordering::SeqCst);
        let waited = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.read_for_itself_ns.fetch_add(waited, Ordering::Relaxed);
    }

    /// Gets the standby reader to read while inline call `seq` runs.
    fn hand_over(self: &Arc<Core>, seq: u64) {
        if seq.is_multiple_of(2) || self.handed_over.swap(seq, Ordering::AcqRel) == seq {
            return;
        }
        let mut sb = lock(&self.standby);
        if sb.exit {
            return;
        }
        sb.wanted = seq;
        if sb.thread.is_none() {
            let core = Arc::clone(self);
            match std::thread::Builder::new()
                .name(format!("tether-standby-{}", self.link.pid))
                .spawn(move || standby(core))
            {
                Ok(thread) => sb.thread = Some(thread),
                Err(e) => {
                    // Reading resumes when the inline call returns.
                    tracing::warn!(pid = self.link.pid, "cannot start a standby reader: {e}");
                }
            }
        }
        drop(sb);
        self.standby_cv.notify_all();
    }
}
