//! Host functions: typed Rust closures behind one dynamic calling convention.
//!
//! A closure `|a: i64, b: String| ...` implements [`IntoFunction`] for the
//! argument tuple `(i64, String)`. Registration turns it into a [`Function`]:
//! a name, optional parameter names, a printable signature, and a boxed
//! `Fn(Vec<Value>) -> Result<Value, Failure>` that deserializes each argument,
//! calls the closure and serializes what it returns.

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::FunctionError;
use crate::protocol::handshake::{Described, StructFields};
use crate::protocol::message::{code, Params, RpcError};
use crate::pytypes::{self, short_type_name, Types};
use crate::value::{from_value, to_value};
use crate::value::{Map, Value};

/// Why a call failed, before it becomes a JSON-RPC error.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Argument `index` could not be converted (or was missing).
    Arg { index: usize, message: String },
    /// The function returned an error.
    Function(FunctionError),
    /// The value the function returned cannot be sent.
    Result(String),
}

type Invoke = dyn Fn(Vec<Value>) -> Result<Value, Failure> + Send + Sync;

/// An async function's call in progress.
pub(crate) type Running = Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send>>;

/// A started call: its answer, once awaited.
pub(crate) type Started = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;

type AsyncInvoke = dyn Fn(Vec<Value>) -> Result<Running, Failure> + Send + Sync;

/// What runs when the function is called.
#[derive(Clone)]
enum Body {
    Sync(Arc<Invoke>),
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Async(Arc<AsyncInvoke>),
}

/// Polls a future, turning a panic in it into an error.
struct CatchUnwind {
    future: Running,
}

impl Future for CatchUnwind {
    type Output = std::thread::Result<Result<Value, Failure>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = &mut self.future;
        match quiet_panics::inside(|| catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Where a sync function's calls run: on the reader's thread until one of
/// them blocked there (its own code outlasted a watchdog tick), then on the
/// pool. A call that blocked once is not proof that the next will: a
/// preemption of the host or a slow first call looks the same. So a moved
/// function tries the reader's thread again after 2 calls on the pool, and
/// comes back when that call's own code took under [`Pooling::TRIAL_NS`]
/// (a function that blocks about a tick often returns before the watchdog
/// looks); each move doubles the wait
/// before the next try, up to [`Pooling::MAX_WAIT`] calls, so a function that
/// really blocks costs the reader a tick only that seldom.
#[derive(Debug, Default)]
pub(crate) struct Pooling {
    moved: AtomicBool,
    /// How many times it moved to the pool (the wait before a try doubles).
    moves: AtomicU32,
    /// Calls sent to the pool since it moved or last tried.
    since: AtomicU32,
}

impl Pooling {
    /// The longest wait, in calls on the pool, before a moved function
    /// tries the reader's thread again.
    pub const MAX_WAIT: u32 = 1024;

    /// The most own time (not reading for itself) a moved function's try on
    /// the reader's thread may take and still bring it back: a quarter of
    /// a watchdog tick.
    pub const TRIAL_NS: u64 = 250_000;

    /// Whether the next call may run on the reader's thread: always while
    /// the function has not moved, and then once every so many calls.
    pub fn inline_next(&self) -> bool {
        if !self.moved.load(Ordering::Relaxed) {
            return true;
        }
        let wait = 1u32
            << self
                .moves
                .load(Ordering::Relaxed)
                .clamp(1, Self::MAX_WAIT.trailing_zeros());
        if self.since.fetch_add(1, Ordering::Relaxed) + 1 < wait {
            return false;
        }
        self.since.store(0, Ordering::Relaxed);
        true
    }

    /// A call ran on the reader's thread: it blocked there (the function
    /// moves to the pool, or stays there) or it did not (it stays, or comes
    /// back). Returns whether it moved just now.
    pub fn ran_inline(&self, blocked: bool) -> bool {
        if !blocked {
            self.moved.store(false, Ordering::Relaxed);
            return false;
        }
        self.moves.fetch_add(1, Ordering::Relaxed);
        self.since.store(0, Ordering::Relaxed);
        !self.moved.swap(true, Ordering::Relaxed)
    }

    /// Whether calls run on the pool now (a call that runs on the reader's
    /// thread all the same is a try).
    pub fn moved(&self) -> bool {
        self.moved.load(Ordering::Relaxed)
    }
}

/// A registered host function.
#[derive(Clone)]
pub(crate) struct Function {
    pub name: String,
    /// Parameter names, when the registration declared them.
    pub params: Option<Vec<String>>,
    /// Rust type of each parameter, shortened (`i64`, `String`, `Value`).
    pub types: Vec<String>,
    /// Each parameter's traced annotation (`None` when it cannot be traced).
    pub arg_annotations: Vec<Option<String>>,
    /// The full name of the type the function returns on success.
    pub return_type: &'static str,
    /// Structs and enums the parameter types use.
    pub types_used: Types,
    /// What the function does, for `help()` and the stubs.
    pub doc: Option<String>,
    /// Takes any number of positional arguments (a dynamic function).
    pub variadic: bool,
    /// Every argument must be given (a dynamic function with named
    /// parameters, which has no Rust types to say so).
    pub all_required: bool,
    /// Whether its calls run on the reader's thread or on the pool.
    pub pooling: Arc<Pooling>,
    body: Body,
}

/// The host's functions, by name in registration order, and the types
/// described for their annotations. Shared by every script of a host.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    pub functions: IndexMap<String, Function>,
    /// Types described with `Host::describe_type`, for return annotations.
    pub described: Types,
}

impl Registry {
    /// The function registered as `name`.
    pub fn get(&self, name: &str) -> Option<&Function> {
        self.functions.get(name)
    }

    /// Whether any function is async.
    pub fn has_async(&self) -> bool {
        self.functions.values().any(Function::is_async)
    }

    /// Names in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }

    /// Every struct and enum the functions' types use.
    pub fn types(&self) -> Types {
        let mut known = self.described.clone();
        for f in self.functions.values() {
            known.extend(&f.types_used);
        }
        known
    }

    /// What a client learns of the functions in the handshake; `known` is
    /// [`types`](Registry::types).
    pub fn describe(&self, known: &Types) -> Vec<Described> {
        self.functions
            .values()
            .map(|f| {
                let (annotations, returns) = f.annotations(known);
                Described {
                    name: f.name.clone(),
                    params: f.params.clone(),
                    signature: f.signature(),
                    annotations,
                    returns,
                    doc: f.doc.clone(),
                }
            })
            .collect()
    }

    /// The structs the annotations name (in `known`, the
    /// [`types`](Registry::types)), each with its fields' annotations.
    pub fn structs(known: Types) -> Vec<(String, StructFields)> {
        known.structs.into_iter().collect()
    }
}

/// A Rust closure that can serve as a host function taking `Args`.
///
/// Implemented for closures of up to eight arguments, each of which
/// implements `serde::de::DeserializeOwned`. You never implement it yourself.
pub trait IntoFunction<Args, R>: Send + Sync + 'static {
    #[doc(hidden)]
    fn arg_types() -> Vec<&'static str>;
    #[doc(hidden)]
    fn trace_args(types: &mut Types) -> Vec<Option<String>>;
    #[doc(hidden)]
    fn invoke(&self, args: Vec<Value>) -> Result<R, (usize, String)>;
}

macro_rules! impl_into_function {
    ($($arg:ident $idx:tt),*) => {
        impl<F, R, $($arg,)*> IntoFunction<($($arg,)*), R> for F
        where
            F: Fn($($arg),*) -> R + Send + Sync + 'static,
            $($arg: DeserializeOwned + 'static,)*
        {
            fn arg_types() -> Vec<&'static str> {
                vec![$(std::any::type_name::<$arg>()),*]
            }

            #[allow(unused_variables)]
            fn trace_args(types: &mut Types) -> Vec<Option<String>> {
                vec![$(pytypes::trace::<$arg>(types)),*]
            }

            #[allow(unused_mut, unused_variables, non_snake_case)]
            fn invoke(&self, args: Vec<Value>) -> Result<R, (usize, String)> {
                let mut args = args.into_iter();
                $(
                    let $arg: $arg = argument(args.next().unwrap_or(Value::Null))
                        .map_err(|e| ($idx, e.to_string()))?;
                )*
                Ok((self)($($arg),*))
            }
        }
    };
}

/// Converts one argument; a [`Value`] parameter takes the value as it is
/// (a large bytes value is not copied).
fn argument<T: DeserializeOwned + 'static>(value: Value) -> Result<T, crate::error::ValueError> {
    let mut slot = Some(value);
    if let Some(same) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<T>>() {
        if let Some(v) = same.take() {
            return Ok(v);
        }
    }
    from_value(slot.unwrap_or_default())
}

/// Converts a result; a [`Value`] is sent as it is (without a copy).
fn result<R: Serialize + 'static>(r: R) -> Result<Value, crate::error::ValueError> {
    let mut slot = Some(r);
    if let Some(value) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Value>>() {
        if let Some(v) = value.take() {
            return Ok(v);
        }
    }
    match &slot {
        Some(r) => to_value(r),
        None => Ok(Value::Null),
    }
}

impl_into_function!();
impl_into_function!(A0 0);
impl_into_function!(A0 0, A1 1);
impl_into_function!(A0 0, A1 1, A2 2);
impl_into_function!(A0 0, A1 1, A2 2, A3 3);
impl_into_function!(A0 0, A1 1, A2 2, A3 3, A4 4);
impl_into_function!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5);
impl_into_function!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6);
impl_into_function!(A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7);

impl Function {
    /// Wraps a closure whose return value is sent as the result.
    pub fn plain<F, A, R>(signature: &str, f: F) -> Result<Function, String>
    where
        F: IntoFunction<A, R>,
        R: Serialize + 'static,
    {
        Function::build::<F, A, R>(signature, std::any::type_name::<R>(), move |args| {
            let r = f.invoke(args).map_err(arg_failure)?;
            result(r).map_err(|e| Failure::Result(e.to_string()))
        })
    }

    /// Wraps a closure returning `Result`, whose error is sent as an error.
    pub fn fallible<F, A, T, E>(signature: &str, f: F) -> Result<Function, String>
    where
        F: IntoFunction<A, Result<T, E>>,
        T: Serialize + 'static,
        E: Display + 'static,
    {
        Function::build::<F, A, Result<T, E>>(signature, std::any::type_name::<T>(), move |args| {
            match f.invoke(args).map_err(arg_failure)? {
                Ok(r) => result(r).map_err(|e| Failure::Result(e.to_string())),
                Err(e) => Err(Failure::Function(function_error(e))),
            }
        })
    }

    fn build<F, A, R>(
        signature: &str,
        return_type: &'static str,
        invoke: impl Fn(Vec<Value>) -> Result<Value, Failure> + Send + Sync + 'static,
    ) -> Result<Function, String>
    where
        F: IntoFunction<A, R>,
    {
        Function::with_body::<F, A, R>(signature, return_type, Body::Sync(Arc::new(invoke)))
    }

    /// Wraps an async closure (one returning a future) whose output is sent
    /// as the result.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub fn asynchronous<F, A, Fut, R>(signature: &str, f: F) -> Result<Function, String>
    where
        F: IntoFunction<A, Fut>,
        Fut: Future<Output = R> + Send + 'static,
        R: Serialize + 'static,
    {
        let f = Arc::new(f);
        let start = move |args: Vec<Value>| -> Result<Running, Failure> {
            let future = f.invoke(args).map_err(arg_failure)?;
            Ok(Box::pin(async move {
                result(future.await).map_err(|e| Failure::Result(e.to_string()))
            }))
        };
        Function::with_body::<F, A, Fut>(
            signature,
            std::any::type_name::<R>(),
            Body::Async(Arc::new(start)),
        )
    }

    /// Wraps an async closure whose output is a `Result`: its error is sent
    /// as an error.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub fn asynchronous_fallible<F, A, Fut, T, E>(signature: &str, f: F) -> Result<Function, String>
    where
        F: IntoFunction<A, Fut>,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize + 'static,
        E: Display + 'static,
    {
        let f = Arc::new(f);
        let start = move |args: Vec<Value>| -> Result<Running, Failure> {
            let future = f.invoke(args).map_err(arg_failure)?;
            Ok(Box::pin(async move {
                match future.await {
                    Ok(r) => result(r).map_err(|e| Failure::Result(e.to_string())),
                    Err(e) => Err(Failure::Function(function_error(e))),
                }
            }))
        };
        Function::with_body::<F, A, Fut>(
            signature,
            std::any::type_name::<T>(),
            Body::Async(Arc::new(start)),
        )
    }

    fn with_body<F, A, R>(
        signature: &str,
        return_type: &'static str,
        body: Body,
    ) -> Result<Function, String>
    where
        F: IntoFunction<A, R>,
    {
        let (name, params) = parse_signature(signature)?;
        let types: Vec<String> = F::arg_types().into_iter().map(short_type_name).collect();
        if let Some(params) = &params {
            if params.len() != types.len() {
                return Err(format!(
                    "{signature:?} names {} parameter(s) but the function takes {}",
                    params.len(),
                    types.len()
                ));
            }
        }
        let mut types_used = Types::default();
        let arg_annotations = F::trace_args(&mut types_used);
        Ok(Function {
            name,
            params,
            types,
            arg_annotations,
            return_type,
            types_used,
            doc: None,
            variadic: false,
            all_required: false,
            pooling: Arc::default(),
            body,
        })
    }

    /// Wraps a function of its arguments as a list: with a bare name, all
    /// positional arguments, however many; with parameter names
    /// (`"add(a, b)"`), exactly those, each given by position or by name,
    /// in the order of the names.
    pub fn dynamic<F>(name: &str, f: F) -> Result<Function, String>
    where
        F: Fn(Vec<Value>) -> Result<Value, FunctionError> + Send + Sync + 'static,
    {
        let (name, params) = parse_signature(name)?;
        let named = params.is_some();
        let arity = params.as_ref().map_or(0, Vec::len);
        Ok(Function {
            name,
            params,
            types: vec!["Value".to_owned(); arity],
            arg_annotations: vec![None; arity],
            return_type: "tether::value::Value",
            types_used: Types::default(),
            doc: None,
            variadic: !named,
            all_required: named,
            pooling: Arc::default(),
            body: Body::Sync(Arc::new(move |args| f(args).map_err(Failure::Function))),
        })
    }

    /// Python annotations of the parameters and of the result, resolved
    /// against `known` (all the structs and enums the host knows).
    pub fn annotations(&self, known: &Types) -> (Vec<String>, String) {
        let params = self
            .arg_annotations
            .iter()
            .zip(&self.types)
            .map(|(traced, rust)| match traced {
                Some(annotation) => annotation.clone(),
                None => pytypes::from_type_name(rust, known),
            })
            .collect();
        (params, pytypes::from_type_name(self.return_type, known))
    }

    /// The signature as the script's author reads it, in Python's types:
    /// `add(a: int, b: int) -> int`.
    pub fn signature(&self) -> String {
        if self.variadic {
            return format!("{}(*args)", self.name);
        }
        let (annotations, returns) = self.annotations(&self.types_used);
        let args: Vec<String> = match &self.params {
            Some(names) => names
                .iter()
                .zip(&annotations)
                .map(|(n, t)| format!("{n}: {t}"))
                .collect(),
            None => annotations,
        };
        format!("{}({}) -> {returns}", self.name, args.join(", "))
    }

    /// Binds the call's arguments, runs the function and turns every way it
    /// can fail (bad arguments, an error, a panic) into an error response.
    pub fn call(&self, params: Params) -> Result<Value, RpcError> {
        let Body::Sync(invoke) = &self.body else {
            return Err(self.internal(
                "Async",
                format!(
                    "{}() is an async host function and needs a runtime to run on",
                    self.name
                ),
            ));
        };
        let args = self.bind(params)?;
        let given: Vec<bool> = args.iter().map(Option::is_some).collect();
        if self.all_required {
            if let Some(index) = given.iter().position(|g| !g) {
                let missing = Failure::Arg {
                    index,
                    message: "missing".into(),
                };
                return Err(self.failed(missing, &given));
            }
        }
        let args = args.into_iter().map(Option::unwrap_or_default).collect();
        let ran = quiet_panics::inside(|| catch_unwind(AssertUnwindSafe(|| invoke(args))));
        match ran {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(failure)) => Err(self.failed(failure, &given)),
            Err(panic) => Err(self.panicked(&*panic)),
        }
    }

    /// Whether the function is `async` (it runs on the script's runtime).
    pub fn is_async(&self) -> bool {
        matches!(self.body, Body::Async(_))
    }

    /// Binds the call's arguments and starts an async function: its future
    /// (which turns every failure, a panic included, into an error
    /// response), or the error response for arguments that do not fit.
    pub fn start(&self, params: Params) -> Result<Started, RpcError> {
        let Body::Async(start) = &self.body else {
            let answer = self.call(params);
            return Ok(Box::pin(async move { answer }));
        };
        let args = self.bind(params)?;
        let given: Vec<bool> = args.iter().map(Option::is_some).collect();
        let args = args.into_iter().map(Option::unwrap_or_default).collect();
        let started = quiet_panics::inside(|| catch_unwind(AssertUnwindSafe(|| start(args))));
        let future = match started {
            Ok(Ok(future)) => future,
            Ok(Err(failure)) => return Err(self.failed(failure, &given)),
            Err(panic) => return Err(self.panicked(&*panic)),
        };
        let me = self.clone();
        Ok(Box::pin(async move {
            match (CatchUnwind { future }).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(failure)) => Err(me.failed(failure, &given)),
                Err(panic) => Err(me.panicked(&*panic)),
            }
        }))
    }

    /// The error response for a call that failed.
    fn failed(&self, failure: Failure, given: &[bool]) -> RpcError {
        match failure {
            Failure::Arg { index, message } => {
                let what = match &self.params {
                    Some(names) => format!("argument {:?}", names[index]),
                    None => format!("argument {}", index + 1),
                };
                let message = if given.get(index) == Some(&false) {
                    format!("{}() missing required {what}", self.name)
                } else {
                    let message = pytypes::pythonic_mismatch(&message);
                    format!("{}() {what}: {message}", self.name)
                };
                self.invalid_params(message)
            }
            Failure::Function(e) => {
                let mut data = Map::new();
                let limit = e.kind == LIMIT_KIND;
                data.insert("kind".into(), Value::Str(e.kind));
                data.insert("function".into(), Value::Str(self.name.clone()));
                if let Some(d) = e.data {
                    data.insert("data".into(), d);
                }
                RpcError {
                    // Kind "Limit" is always code -32003 (docs/protocol.md §3.4).
                    code: if limit {
                        code::LIMIT
                    } else {
                        code::FUNCTION_ERROR
                    },
                    message: e.message,
                    data: Some(Value::Map(data)),
                }
            }
            Failure::Result(message) => self.internal(
                "BadResult",
                format!(
                    "{}() returned a value that cannot be sent: {message}",
                    self.name
                ),
            ),
        }
    }

    fn panicked(&self, panic: &(dyn Any + Send)) -> RpcError {
        self.internal(
            "panic",
            format!(
                "host function {}() panicked: {}",
                self.name,
                panic_message(panic)
            ),
        )
    }

    fn bind(&self, params: Params) -> Result<Vec<Option<Value>>, RpcError> {
        let arity = self.types.len();
        match params {
            Params::Positional(items) if self.variadic => Ok(items.into_iter().map(Some).collect()),
            Params::Positional(items) => {
                if items.len() > arity {
                    return Err(self.invalid_params(format!(
                        "{}() takes {arity} argument{} but {} were given",
                        self.name,
                        if arity == 1 { "" } else { "s" },
                        items.len()
                    )));
                }
                let mut args: Vec<Option<Value>> = items.into_iter().map(Some).collect();
                args.resize(arity, None);
                Ok(args)
            }
            Params::Named(map) => {
                let Some(names) = &self.params else {
                    return Err(self.invalid_params(format!(
                        "{}() takes no keyword arguments (its parameters have no names)",
                        self.name
                    )));
                };
                let mut args = vec![None; arity];
                for (key, value) in map {
                    match names.iter().position(|n| *n == key) {
                        Some(i) => args[i] = Some(value),
                        None => {
                            return Err(self.invalid_params(format!(
                                "{}() got an unexpected keyword argument {key:?}",
                                self.name
                            )))
                        }
                    }
                }
                Ok(args)
            }
        }
    }

    fn detail(&self, kind: &str) -> Value {
        let mut data = Map::new();
        data.insert("kind".into(), Value::from(kind));
        data.insert("function".into(), Value::Str(self.name.clone()));
        data.insert("expects".into(), Value::Str(self.signature()));
        Value::Map(data)
    }

    fn invalid_params(&self, message: String) -> RpcError {
        RpcError {
            code: code::INVALID_PARAMS,
            message: format!("{message}; expects {}", self.signature()),
            data: Some(self.detail("InvalidParams")),
        }
    }

    fn internal(&self, kind: &str, message: String) -> RpcError {
        RpcError {
            code: code::INTERNAL_ERROR,
            message,
            data: Some(self.detail(kind)),
        }
    }
}

fn arg_failure((index, message): (usize, String)) -> Failure {
    Failure::Arg { index, message }
}

/// The kind of a refusal by one of the host's limits.
const LIMIT_KIND: &str = "Limit";

fn function_error<E: Display + 'static>(e: E) -> FunctionError {
    if let Some(fe) = (&e as &dyn Any).downcast_ref::<FunctionError>() {
        return fe.clone();
    }
    // A limit of the host's (a call back into the script nested too deep)
    // that the function passed on reaches the script as the limit it is.
    if let Some(crate::error::Error::Limit { detail, .. }) =
        (&e as &dyn Any).downcast_ref::<crate::error::Error>()
    {
        return FunctionError::new(LIMIT_KIND, detail.clone());
    }
    let kind = match short_type_name(std::any::type_name::<E>()).as_str() {
        "String" | "&str" | "Cow<str>" => "Error".to_owned(),
        other => other.to_owned(),
    };
    FunctionError::new(kind, e.to_string())
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// `"add(a, b)"` → `("add", Some(["a", "b"]))`; `"add"` → `("add", None)`.
fn parse_signature(signature: &str) -> Result<(String, Option<Vec<String>>), String> {
    let signature = signature.trim();
    let (name, params) = match signature.split_once('(') {
        None => (signature, None),
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("{signature:?} has no closing parenthesis"))?;
            let names: Vec<String> = inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            for n in &names {
                if !is_identifier(n) {
                    return Err(format!(
                        "{signature:?}: parameter name {n:?} is not an identifier"
                    ));
                }
            }
            (name.trim(), Some(names))
        }
    };
    if !is_identifier(name) {
        return Err(format!(
            "function name {name:?} is not an identifier (letters, digits and _, not starting with a digit, not a Python keyword)"
        ));
    }
    Ok((name.to_owned(), params))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
        && !pytypes::KEYWORDS.contains(&s)
}

/// A panic inside a host function fails only that call: the script gets an
/// error of kind `panic` with the message, and the host a `tracing` error
/// (target `tether::panic`) with where it happened. Rust's default panic
/// hook would also print it on the host's stderr, where nobody can act on
/// it; the hook installed here (once, chaining the one that was set before)
/// stays quiet for those panics and hands every other panic on. A program
/// that sets its own hook afterwards gets every panic, these too.
mod quiet_panics {
    use std::cell::Cell;
    use std::sync::Once;

    thread_local! {
        /// How many host functions this thread is inside (they nest).
        static INSIDE: Cell<u32> = const { Cell::new(0) };
    }

    /// Runs `f` (which must not unwind: it wraps `catch_unwind`) as a host
    /// function, after installing the hook if nobody has yet.
    pub fn inside<R>(f: impl FnOnce() -> R) -> R {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let before = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if INSIDE.with(Cell::get) == 0 {
                    return before(info);
                }
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                let message = super::panic_message(info.payload());
                tracing::error!(target: "tether::panic", %location, "a host function panicked: {message}");
            }));
        });
        INSIDE.with(|n| n.set(n.get() + 1));
        let result = f();
        INSIDE.with(|n| n.set(n.get() - 1));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of `calls` calls the function may run on the reader's
    /// thread, each of them blocking there.
    fn tries(pooling: &Pooling, calls: u32) -> u32 {
        (0..calls)
            .filter(|_| {
                let inline = pooling.inline_next();
                if inline {
                    pooling.ran_inline(true);
                }
                inline
            })
            .count() as u32
    }

    #[test]
    fn a_function_that_blocked_once_comes_back_to_the_reader() {
        let pooling = Pooling::default();
        assert!(pooling.inline_next());
        assert!(!pooling.ran_inline(false) && !pooling.moved());
        assert!(pooling.inline_next());
        assert!(pooling.ran_inline(true), "it moves");
        assert!(pooling.moved());
        assert!(
            !pooling.inline_next(),
            "the first call after the move goes to the pool"
        );
        assert!(pooling.inline_next(), "the second tries the reader again");
        assert!(!pooling.ran_inline(false));
        assert!(!pooling.moved(), "back on the reader");
        assert!(pooling.inline_next() && pooling.inline_next());
    }

    #[test]
    fn a_function_that_keeps_blocking_tries_the_reader_ever_more_seldom() {
        let pooling = Pooling::default();
        // Tries after 2, 4, 8, ... 1,024 calls on the pool, then every 1,024.
        let first = tries(&pooling, 2047);
        assert_eq!(first, 1 + 10, "the first call, then one try per doubling");
        assert!(pooling.moved());
        assert_eq!(tries(&pooling, 10 * Pooling::MAX_WAIT), 10);
        // Even after that, a call that does not block brings it back.
        while !pooling.inline_next() {}
        pooling.ran_inline(false);
        assert!(!pooling.moved());
    }

    fn positional(values: Vec<Value>) -> Params {
        Params::Positional(values)
    }

    #[test]
    fn short_names() {
        assert_eq!(
            short_type_name("alloc::vec::Vec<alloc::string::String>"),
            "Vec<String>"
        );
        assert_eq!(short_type_name("i64"), "i64");
        assert_eq!(
            short_type_name("core::option::Option<tether::value::Value>"),
            "Option<Value>"
        );
    }

    #[test]
    fn signatures() {
        assert_eq!(
            parse_signature("add(a, b)").unwrap(),
            ("add".into(), Some(vec!["a".into(), "b".into()]))
        );
        assert_eq!(parse_signature("f()").unwrap(), ("f".into(), Some(vec![])));
        assert!(parse_signature("a b").is_err());
        assert!(parse_signature("f(a").is_err());
        assert!(parse_signature("rpc.x").is_err());
        assert!(Function::plain("add(a)", |a: i64, b: i64| a + b).is_err());
    }

    #[test]
    fn a_dynamic_function_with_names_binds_by_position_and_by_name() {
        let f = Function::dynamic("sub(a, b)", |args| match args.as_slice() {
            [Value::Int(a), Value::Int(b)] => Ok(Value::Int(a - b)),
            other => Err(FunctionError::new("TypeError", format!("{other:?}"))),
        })
        .unwrap();
        assert_eq!(f.signature(), "sub(a: Any, b: Any) -> Any");
        assert_eq!(
            f.call(Params::Positional(vec![Value::Int(5), Value::Int(2)])),
            Ok(Value::Int(3))
        );
        let named = Map::from_iter([
            ("b".to_owned(), Value::Int(2)),
            ("a".to_owned(), Value::Int(5)),
        ]);
        assert_eq!(f.call(Params::Named(named)), Ok(Value::Int(3)));
        let err = f.call(Params::Positional(vec![Value::Int(5)])).unwrap_err();
        assert!(
            err.message
                .starts_with("sub() missing required argument \"b\""),
            "{}",
            err.message
        );
        let err = f
            .call(Params::Positional(vec![Value::Int(1); 3]))
            .unwrap_err();
        assert!(
            err.message.contains("takes 2 arguments but 3 were given"),
            "{}",
            err.message
        );
        // Without names: any positional arguments, and keywords are refused in Python's words.
        let any = Function::dynamic("any", |args| Ok(Value::Int(args.len() as i64))).unwrap();
        assert_eq!(
            any.call(Params::Positional(vec![Value::Null; 4])),
            Ok(Value::Int(4))
        );
        let err = any
            .call(Params::Named(Map::from_iter([(
                "x".to_owned(),
                Value::Null,
            )])))
            .unwrap_err();
        assert!(
            err.message.contains("takes no keyword arguments"),
            "{}",
            err.message
        );
    }

    #[test]
    fn binds_positional_and_named_arguments() {
        let f = Function::plain("add(a, b)", |a: i64, b: i64| a + b).unwrap();
        assert_eq!(
            f.call(positional(vec![Value::Int(2), Value::Int(3)])),
            Ok(Value::Int(5))
        );
        let named = Map::from_iter([
            ("b".to_owned(), Value::Int(1)),
            ("a".to_owned(), Value::Int(10)),
        ]);
        assert_eq!(f.call(Params::Named(named)), Ok(Value::Int(11)));
    }

    #[test]
    fn optional_trailing_arguments_may_be_left_out() {
        let f = Function::plain("greet(name, greeting)", |n: String, g: Option<String>| {
            format!("{}, {n}", g.unwrap_or_else(|| "hello".into()))
        })
        .unwrap();
        assert_eq!(
            f.call(positional(vec![Value::from("bob")])),
            Ok(Value::from("hello, bob"))
        );
    }

    #[test]
    fn bad_arguments_name_the_function_and_its_signature() {
        let f = Function::plain("add(a, b)", |a: i64, b: i64| a + b).unwrap();
        let err = f.call(positional(vec![Value::Int(1)])).unwrap_err();
        assert_eq!(err.code, code::INVALID_PARAMS);
        assert_eq!(
            err.message,
            "add() missing required argument \"b\"; expects add(a: int, b: int) -> int"
        );
        let err = f
            .call(positional(vec![Value::Int(1), Value::from("x")]))
            .unwrap_err();
        assert_eq!(
            err.message,
            "add() argument \"b\": expected int, got str \"x\"; expects add(a: int, b: int) -> int"
        );
        let err = f.call(positional(vec![Value::Int(1); 3])).unwrap_err();
        assert_eq!(
            err.message,
            "add() takes 2 arguments but 3 were given; expects add(a: int, b: int) -> int"
        );
        let named = Map::from_iter([("c".to_owned(), Value::Int(1))]);
        let err = f.call(Params::Named(named)).unwrap_err();
        assert_eq!(
            err.message,
            "add() got an unexpected keyword argument \"c\"; expects add(a: int, b: int) -> int"
        );
    }

    #[test]
    fn errors_and_panics_become_error_responses() {
        #[derive(Debug)]
        struct Nope;
        impl Display for Nope {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("nope")
            }
        }
        let f = Function::fallible("f", |_: i64| -> Result<i64, Nope> { Err(Nope) }).unwrap();
        let err = f.call(positional(vec![Value::Int(1)])).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (code::FUNCTION_ERROR, "nope")
        );
        let kind = match err.data {
            Some(Value::Map(m)) => m["kind"].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(kind, Value::from("Nope"));

        let f = Function::fallible("g", || -> Result<(), FunctionError> {
            Err(FunctionError::new("NotFound", "gone"))
        })
        .unwrap();
        let err = f.call(positional(vec![])).unwrap_err();
        assert!(matches!(err.data, Some(Value::Map(m)) if m["kind"] == Value::from("NotFound")));

        let f = Function::plain("boom", || -> i64 { panic!("kaboom") }).unwrap();
        let err = f.call(positional(vec![])).unwrap_err();
        assert_eq!(err.message, "host function boom() panicked: kaboom");
    }
}
