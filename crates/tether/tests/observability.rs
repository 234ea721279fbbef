//! What a host sees of its scripts while they run: a `tracing` span for
//! every call in both directions (with the script's log records inside the
//! span of the call they happened in), per-script counters, and the value a
//! host attached to a script.

mod common;

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{host, script};
use tether::{FunctionError, Peer, Script};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span or an event as the recorder saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    name: String,
    target: String,
    /// The span's id (for an event: the id of the span it happened in).
    span: Option<u64>,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Recorded {
    spans: BTreeMap<u64, Seen>,
    events: Vec<Seen>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recorded>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl<S> tracing_subscriber::Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::Id,
        ctx: Context<'_, S>,
    ) {
        let mut seen = Seen {
            name: attrs.metadata().name().into(),
            target: attrs.metadata().target().into(),
            span: Some(id.into_u64()),
            parent: ctx
                .span(id)
                .and_then(|s| s.parent())
                .map(|p| p.id().into_u64()),
            ..Seen::default()
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.0.lock().unwrap().spans.insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &tracing::Id, values: &tracing::span::Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.0.lock().unwrap().spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut seen = Seen {
            name: event.metadata().name().into(),
            target: event.metadata().target().into(),
            span: ctx.event_span(event).map(|s| s.id().into_u64()),
            ..Seen::default()
        };
        event.record(&mut Fields(&mut seen.fields));
        self.0.lock().unwrap().events.push(seen);
    }
}

/// The recorder, installed as the global subscriber: calls are served on
/// threads of their own, which a thread-local subscriber would not see.
fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = Recorder::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(recorder.clone()),
        )
        .expect("no other global subscriber in this test binary");
        recorder
    })
}

impl Recorder {
    /// The call spans of the script `pid`, in the order they started.
    fn calls(&self, pid: u32) -> Vec<Seen> {
        let recorded = self.0.lock().unwrap();
        recorded
            .spans
            .values()
            .filter(|s| s.name == "tether.call" && s.fields.get("pid") == Some(&pid.to_string()))
            .cloned()
            .collect()
    }

    fn events(&self) -> Vec<Seen> {
        self.0.lock().unwrap().events.clone()
    }
}

fn call<'a>(calls: &'a [Seen], direction: &str, method: &str) -> &'a Seen {
    calls
        .iter()
        .find(|s| s.fields["direction"] == direction && s.fields["method"] == method)
        .unwrap_or_else(|| panic!("no {direction} span for {method}: {calls:#?}"))
}

#[test]
fn every_call_is_a_span_and_the_scripts_logs_land_in_the_call_they_happened_in() {
    let recorder = recorder();
    let host = host()
        .forward_logs()
        .try_function("double(n)", |n: i64| -> Result<i64, tether::Error> {
            tracing::info!(target: "test::host", "doubling {n}");
            Peer::current()
                .expect("called by a script")
                .call("plus", (n, n))
        })
        .try_function("refuse()", || -> Result<(), FunctionError> {
            Err(FunctionError::new("NotAllowed", "refused on purpose"))
        });
    let child = host
        .spawn(script(
            r#"
import logging, tether
log = logging.getLogger("plugin")
log.warning("before serving")

@tether.export
def work(n):
    log.warning("working on %d", n)
    return tether.host.double(n)

@tether.export
def plus(a, b):
    return a + b

@tether.export
def fail():
    try:
        tether.host.refuse()
    except tether.Error:
        pass
    raise ValueError("no good")

tether.serve()
"#,
        ))
        .unwrap();
    let pid = child.id();
    assert_eq!(child.call::<i64>("work", (21,)).unwrap(), 42);
    let err = child.call::<()>("fail", ()).unwrap_err();
    assert!(err.to_string().contains("no good"), "{err}");
    let outcome = child.shutdown(Duration::from_secs(5)).unwrap();
    assert!(outcome.success());

    let calls = recorder.calls(pid);
    let work = call(&calls, "to_script", "work");
    assert_eq!(work.target, "tether::call");
    assert_eq!(work.fields["outcome"], "ok");
    assert_eq!(work.fields["script"], "script.py");
    assert!(work.fields["micros"].parse::<u64>().is_ok(), "{work:?}");
    let fail = call(&calls, "to_script", "fail");
    assert_eq!(fail.fields["outcome"], "error");
    assert!(fail.fields["error"].contains("no good"), "{fail:?}");
    let double = call(&calls, "to_host", "double");
    assert_eq!(double.fields["outcome"], "ok");
    // The host function's call back into the script is a child of its span.
    let plus = call(&calls, "to_script", "plus");
    assert_eq!(plus.parent, double.span);
    let refuse = call(&calls, "to_host", "refuse");
    assert_eq!(refuse.fields["outcome"], "error");
    assert!(
        refuse.fields["error"].contains("refused on purpose"),
        "{refuse:?}"
    );

    let events = recorder.events();
    let logged = |message: &str| {
        events
            .iter()
            .find(|e| e.fields.get("message").map(String::as_str) == Some(message))
            .unwrap_or_else(|| panic!("no event {message:?}: {events:#?}"))
            .clone()
    };
    // The script's record made while it ran the host's call `work` is
    // inside that call's span; the one made before it served is in none.
    assert_eq!(logged("working on 21").span, work.span);
    assert_eq!(logged("working on 21").target, "tether::script");
    assert_eq!(logged("before serving").span, None);
    // A host function's own events are inside its span.
    assert_eq!(logged("doubling 21").span, double.span);
}

#[test]
fn counters_say_what_went_each_way_and_what_is_in_flight_now() {
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let entered_tx = Mutex::new(entered_tx);
    let host = host().function("hold()", move || {
        entered_tx.lock().unwrap().send(()).unwrap();
        release_rx.lock().unwrap().recv().unwrap();
    });
    let child = host
        .spawn(script(
            r#"
import threading, time, tether

@tether.export
def echo(x):
    return x

@tether.export
def hold():
    tether.host.hold()

@tether.export
def slow():
    time.sleep(0.5)

@tether.export
def plus(a, b):
    return a + b

@tether.export
def fail():
    raise RuntimeError("x")

tether.serve()
"#,
        ))
        .unwrap();
    child.peer().wait_ready(Duration::from_secs(30)).unwrap();
    let fresh = child.stats();
    assert_eq!(fresh.calls_to_script, 0);
    assert!(fresh.bytes_from_script > 0, "the hello came in: {fresh:?}");
    assert!(fresh.bytes_to_script > 0, "the host answered it: {fresh:?}");

    let big = "x".repeat(100_000);
    assert_eq!(child.call::<String>("echo", (&big,)).unwrap(), big);
    assert!(child.call::<()>("fail", ()).is_err());
    child.notify("echo", (1,)).unwrap();
    let after = child.stats();
    assert_eq!(after.calls_to_script, 3, "{after:?}");
    assert_eq!(after.failed_to_script, 1, "{after:?}");
    assert!(after.bytes_to_script > 100_000, "{after:?}");
    assert!(after.bytes_from_script > 100_000, "{after:?}");
    assert_eq!((after.running_on_host, after.waiting_on_script), (0, 0));

    // While the script's call runs on the host, and while the host waits
    // for the script, the counters say so.
    let peer = child.peer();
    let holding = std::thread::spawn(move || peer.call::<()>("hold", ()));
    entered.recv_timeout(Duration::from_secs(10)).unwrap();
    let during = child.stats();
    assert_eq!(during.running_on_host, 1, "{during:?}");
    assert_eq!(during.waiting_on_script, 1, "{during:?}");
    assert_eq!(during.calls_from_script, 1, "{during:?}");
    release.send(()).unwrap();
    holding.join().unwrap().unwrap();

    let peer = child.peer();
    let slow = std::thread::spawn(move || peer.call::<()>("slow", ()));
    let until = Instant::now() + Duration::from_secs(10);
    while child.stats().waiting_on_script == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(child.peer().stats().waiting_on_script, 1);
    slow.join().unwrap().unwrap();

    let outcome = child.shutdown(Duration::from_secs(5)).unwrap();
    let last = outcome.stats();
    assert_eq!(last.calls_to_script, 5, "{last:?}");
    assert_eq!(last.calls_from_script, 1, "{last:?}");
    assert_eq!(last.failed_from_script, 0, "{last:?}");
    assert_eq!(outcome.calls(), 1);
}

#[test]
fn a_failing_host_function_and_an_unknown_one_count_as_failed() {
    let host = host().try_function("nope()", || -> Result<(), FunctionError> {
        Err(FunctionError::new("Nope", "nope"))
    });
    let outcome = host
        .run(script(
            r#"
import tether
for call in (lambda: tether.host.nope(), lambda: tether.host.missing()):
    try:
        call()
    except tether.Error:
        pass
tether.host.add(1, 2)
"#,
        ))
        .unwrap()
        .check()
        .unwrap();
    let stats = outcome.stats();
    assert_eq!(stats.calls_from_script, 3, "{stats:?}");
    assert_eq!(stats.failed_from_script, 2, "{stats:?}");
}

#[test]
fn a_host_function_knows_which_script_calls_through_the_context_it_was_given() {
    struct Plugin {
        name: &'static str,
    }
    let host = host().function("whoami()", || -> String {
        let caller = Peer::current().expect("called by a script");
        match caller.context::<Plugin>() {
            Some(plugin) => plugin.name.to_owned(),
            None => "unknown".to_owned(),
        }
    });
    let code = r#"
import sys, tether
sys.exit(0 if tether.host.whoami() == sys.argv[1] else 1)
"#;
    for name in ["alpha", "beta"] {
        let script = Script::new(script(code)).arg(name).context(Plugin { name });
        host.run(script).unwrap().check().unwrap();
    }
    // No context, or one of another type: the function sees none.
    host.run(Script::new(script(code)).arg("unknown"))
        .unwrap()
        .check()
        .unwrap();
    host.run(Script::new(script(code)).arg("unknown").context(7_u8))
        .unwrap()
        .check()
        .unwrap();
}
